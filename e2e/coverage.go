package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// coverageFigure is one member's entry in the hub's /api/v1/coverage: its running containers
// by where their image comes from. It mirrors hub/internal/images.Coverage, which e2e cannot
// import (internal to hub/); decoding the JSON is also what a user of the API does.
type coverageFigure struct {
	Cluster    string         `json:"cluster"`
	Containers map[string]int `json:"containers"`
}

// stateBackup is the state of a container that runs a backup (images.FromBackup).
const stateBackup = "backup"

// total is the number of running containers the figure counts, in every state.
func (f coverageFigure) total() int {
	n := 0
	for _, c := range f.Containers {
		n += c
	}
	return n
}

// hubCoverage reads the coverage figure of member from the hub's dashboard at dashboardURL
// (http://host:port/), one GET of /api/v1/coverage bounded by 10s.
func hubCoverage(ctx context.Context, dashboardURL, member string) (coverageFigure, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := strings.TrimSuffix(dashboardURL, "/") + "/api/v1/coverage"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return coverageFigure{}, fmt.Errorf("coverage request: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return coverageFigure{}, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return coverageFigure{}, fmt.Errorf("reading GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return coverageFigure{}, fmt.Errorf("GET %s: %s: %s", u, resp.Status, body)
	}
	var view struct {
		Clusters []coverageFigure `json:"clusters"`
		Error    string           `json:"error"`
	}
	if err := json.Unmarshal(body, &view); err != nil {
		return coverageFigure{}, fmt.Errorf("decoding GET %s: %w", u, err)
	}
	for _, c := range view.Clusters {
		if c.Cluster == member {
			return c, nil
		}
	}
	return coverageFigure{}, fmt.Errorf("GET %s: no figure for cluster %s (error %q)", u, member, view.Error)
}

// podCount is the coverage of a member as its Pods' status shows it, counted without the hub.
type podCount struct {
	// Total counts the running containers (init, regular, ephemeral) of the Running Pods, what
	// the hub's figure counts in all its states.
	Total int
	// FromBackup counts those whose image is a backup in the backup registry (a ClonedImage's
	// status.backup, by tag or pinned to its digest) and whose status.imageID has that
	// ClonedImage's digest: what the node really started.
	FromBackup int
	// Unmatched says, for each running container whose image is under the backup registry but
	// that is not counted in FromBackup, why.
	Unmatched []string
}

// countCoverage counts pods' running containers as podCount says. backupRegistry is
// BACKUP_REGISTRY (host/path); images are the member's ClonedImages.
//
// The digest is compared, not the repository of status.imageID: containerd reports the first
// repository it stored the content under, which is upstream when an unpatched Pod pulled the
// same image on that node first (see runsFrom).
func countCoverage(pods []corev1.Pod, images []v1alpha1.ClonedImage, backupRegistry string) podCount {
	var n podCount
	for i := range pods {
		p := &pods[i]
		if p.Status.Phase != corev1.PodRunning {
			continue
		}
		spec := map[string]string{}
		for _, r := range workload.Refs(&p.Spec) {
			spec[r.Container] = r.Image
		}
		statuses := slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses, p.Status.EphemeralContainerStatuses)
		for _, s := range statuses {
			if s.State.Running == nil {
				continue
			}
			n.Total++
			image := spec[s.Name]
			if image == "" {
				image = s.Image
			}
			if !strings.HasPrefix(image, backupRegistry+"/") {
				continue
			}
			where := p.Namespace + "/" + p.Name + " container " + s.Name
			ci := backupFor(images, image)
			switch {
			case ci == nil:
				n.Unmatched = append(n.Unmatched, fmt.Sprintf("%s runs %s, no ClonedImage's backup", where, image))
			case digestOf(s.ImageID) != ci.Status.Digest:
				n.Unmatched = append(n.Unmatched, fmt.Sprintf("%s runs %s as imageID %s, not the backup's digest %s", where, image, s.ImageID, ci.Status.Digest))
			default:
				n.FromBackup++
			}
		}
	}
	return n
}

// backupFor returns the ClonedImage of which image is the backup, or nil.
func backupFor(images []v1alpha1.ClonedImage, image string) *v1alpha1.ClonedImage {
	for i := range images {
		if images[i].Status.Backup != "" && isBackupOf(image, &images[i]) == "" {
			return &images[i]
		}
	}
	return nil
}

// digestOf returns the digest of an imageID (repo@sha256:..., or sha256:... alone).
func digestOf(imageID string) string {
	if i := strings.LastIndex(imageID, "@"); i >= 0 {
		return imageID[i+1:]
	}
	return imageID
}

// coverageMismatch says where the hub's figure disagrees with what the Pods show, or "": the
// hub's backup count must be the Pods' FromBackup, and its total theirs.
func coverageMismatch(hub coverageFigure, pods podCount) string {
	var why []string
	if got := hub.Containers[stateBackup]; got != pods.FromBackup {
		why = append(why, fmt.Sprintf("the hub counts %d containers from backups, the Pods show %d", got, pods.FromBackup))
	}
	if got := hub.total(); got != pods.Total {
		why = append(why, fmt.Sprintf("the hub counts %d running containers, the Pods show %d", got, pods.Total))
	}
	if len(why) == 0 {
		return ""
	}
	return fmt.Sprintf("%s: %s (hub: %v; not from a backup though under the backup registry: %v)",
		hub.Cluster, strings.Join(why, "; "), hub.Containers, pods.Unmatched)
}

// podsAndImages lists k's Pods and ClonedImages.
func podsAndImages(ctx context.Context, k *Kube) ([]corev1.Pod, []v1alpha1.ClonedImage, error) {
	var pods corev1.PodList
	if err := k.Client.List(ctx, &pods); err != nil {
		return nil, nil, fmt.Errorf("listing Pods of %s: %w", k.Name, err)
	}
	var cis v1alpha1.ClonedImageList
	if err := k.Client.List(ctx, &cis); err != nil {
		return nil, nil, fmt.Errorf("listing ClonedImages of %s: %w", k.Name, err)
	}
	return pods.Items, cis.Items, nil
}

// PodsCoverageSpec: the hub's coverage figure of a member is what its nodes run. In the first
// member, with REWRITE_MODE=auto, a bare Pod and an operator's Pod (controlled by a custom
// resource of a CRD installed for the spec) are admitted before their image has a backup and
// run from upstream; once the backup is Ready a second bare Pod and a second operator Pod are
// rewritten at admission and run from the backup: Running, each container's status.imageID
// with the backup's digest. Then the hub's /api/v1/coverage for that member must agree with a
// count made from the member's Pods alone (countCoverage): as many running containers in all,
// and as many from backups as run a ClonedImage's backup with its digest, these two among
// them; the two upstream Pods are owner-not-patchable in the hub's figure. A control: the same
// count with the backup's digest changed disagrees with the hub, so the comparison can fail.
// It needs the hub's dashboard (in.DashboardURL) and is skipped without it.
func PodsCoverageSpec(ctx context.Context, t *testing.T, in NodesInput) {
	if in.DashboardURL == "" {
		t.Skip("the hub's dashboard address is not known (DashboardURL): not checked")
	}
	g := gomega.NewWithT(t)
	m := in.Members[0]
	useRewriteMode(ctx, t, in.FleetInput, m, config.RewriteAuto)
	op := installOperatorKind(ctx, t, m)
	ns := newNamespace(ctx, t, m)
	owner := op.create(ctx, t, m, ns, "db")
	ref, digest := pushRunnable(t, in, "cover")
	mk := func(name string, owner *metav1.OwnerReference) func() *corev1.Pod {
		return func() *corev1.Pod {
			p := pod(ns, name+"-"+randomSuffix(), ref, owner)
			alwaysPull(&p.Spec)
			return p
		}
	}
	var upstream []*corev1.Pod
	for _, o := range []*metav1.OwnerReference{nil, &owner} {
		p := mk("upstream", o)()
		g.Expect(m.Client.Create(ctx, p)).To(gomega.Succeed())
		upstream = append(upstream, p)
	}
	ci := waitReady(ctx, t, in.FleetInput, m, ref)
	g.Expect(ci.Status.Digest).To(gomega.Equal(digest.String()))
	backup := []*corev1.Pod{
		createRewritten(ctx, t, in.FleetInput, m, ci, mk("backup", nil)),
		createRewritten(ctx, t, in.FleetInput, m, ci, mk("backup", &owner)),
	}
	waitPodsRun(ctx, t, in, m, upstream, repository(t, ref), digest)
	waitPodsRun(ctx, t, in, m, backup, repository(t, ci.Status.Backup), digest)

	coverageAgrees(ctx, t, in.FleetInput, m, ci, len(backup), len(upstream))
}

// coverageAgrees waits until the hub's coverage figure of member k agrees with countCoverage
// of k's Pods (coverageMismatch), counting at least minBackup containers from backups and
// minNotPatchable owner-not-patchable ones. The control: the same count with ci's digest
// changed must disagree with the hub, so that the comparison is seen to fail where the nodes
// did not start the backup's digest.
func coverageAgrees(ctx context.Context, t testing.TB, in FleetInput, k *Kube, ci *v1alpha1.ClonedImage, minBackup, minNotPatchable int) {
	t.Helper()
	var hub coverageFigure
	var counted podCount
	gomega.NewWithT(t).Eventually(func(g gomega.Gomega) {
		pods, cis, err := podsAndImages(ctx, k)
		g.Expect(err).NotTo(gomega.HaveOccurred())
		counted = countCoverage(pods, cis, in.BackupRegistry)
		hub, err = hubCoverage(ctx, in.DashboardURL, k.Name)
		g.Expect(err).NotTo(gomega.HaveOccurred())
		g.Expect(coverageMismatch(hub, counted)).To(gomega.BeEmpty())
		g.Expect(counted.FromBackup).To(gomega.BeNumerically(">=", minBackup), "the spec's backup Pods are counted")
		g.Expect(hub.Containers["owner-not-patchable"]).To(gomega.BeNumerically(">=", minNotPatchable), "the upstream bare and operator Pods: %v", hub.Containers)

		tampered := make([]v1alpha1.ClonedImage, len(cis))
		for i := range cis {
			tampered[i] = *cis[i].DeepCopy()
			if tampered[i].Name == ci.Name {
				tampered[i].Status.Digest = "sha256:" + strings.Repeat("0", 64)
			}
		}
		g.Expect(coverageMismatch(hub, countCoverage(pods, tampered, in.BackupRegistry))).NotTo(gomega.BeEmpty(),
			"the comparison accepted containers whose digest is not the backup's")
	}).WithTimeout(in.timeout()).WithPolling(time.Second).Should(gomega.Succeed())
	t.Logf("%s: the hub's coverage %v agrees with the Pods: %d running containers, %d from backups with their digest",
		k.Name, hub.Containers, counted.Total, counted.FromBackup)
}

// waitPodsRun waits until each of pods (by name) runs from repo@digest (runsFrom).
func waitPodsRun(ctx context.Context, t testing.TB, in NodesInput, k *Kube, pods []*corev1.Pod, repo string, digest v1.Hash) {
	t.Helper()
	gomega.NewWithT(t).Eventually(func(g gomega.Gomega) {
		for _, p := range pods {
			var got corev1.Pod
			g.Expect(k.Client.Get(ctx, client.ObjectKeyFromObject(p), &got)).To(gomega.Succeed())
			g.Expect(runsFrom(got, repo, digest)).To(gomega.BeEmpty(), "in %s", k.Name)
		}
	}).WithTimeout(2 * in.timeout()).WithPolling(time.Second).Should(gomega.Succeed())
}
