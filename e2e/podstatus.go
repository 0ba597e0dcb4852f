package e2e

import (
	"context"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/pkg/config"
)

// PodStatusCoverageSpec is PodsCoverageSpec's comparison where no kubelet runs (local control
// planes, which have no nodes): the spec writes the status a kubelet would write once it
// started a Pod's containers (Running, status.imageID the pulled repository with the image's
// digest), and the hub's /api/v1/coverage for the first member must then agree with the count
// made from the Pods (coverageAgrees): the rewritten bare and operator Pods from backups, the
// two admitted before the backup existed owner-not-patchable. What it shows is the hub's side,
// as real processes serve it (its Pod cache, projection and figures); what nodes really start
// is PodsCoverageSpec's, on kind. It is skipped where the member has nodes, whose kubelets own
// the status, or without the hub's dashboard (DashboardURL).
func PodStatusCoverageSpec(ctx context.Context, t *testing.T, in FleetInput) {
	g := gomega.NewWithT(t)
	m := in.Members[0]
	if in.DashboardURL == "" {
		t.Skip("the hub's dashboard address is not known (DashboardURL): not checked")
	}
	var nodes corev1.NodeList
	g.Expect(m.Client.List(ctx, &nodes)).To(gomega.Succeed())
	if len(nodes.Items) > 0 {
		t.Skipf("%s has %d nodes, whose kubelets write Pod status: PodsCoverageSpec checks this there", m.Name, len(nodes.Items))
	}
	useRewriteMode(ctx, t, in, m, config.RewriteAuto)
	op := installOperatorKind(ctx, t, m)
	ns := newNamespace(ctx, t, m)
	owner := op.create(ctx, t, m, ns, "db")
	ref, digest := pushImage(t, in, "status")
	mk := func(name string, owner *metav1.OwnerReference) func() *corev1.Pod {
		return func() *corev1.Pod { return pod(ns, name+"-"+randomSuffix(), ref, owner) }
	}
	var upstream []*corev1.Pod
	for _, o := range []*metav1.OwnerReference{nil, &owner} {
		p := mk("upstream", o)()
		g.Expect(m.Client.Create(ctx, p)).To(gomega.Succeed())
		upstream = append(upstream, p)
	}
	ci := waitReady(ctx, t, in, m, ref)
	backup := []*corev1.Pod{
		createRewritten(ctx, t, in, m, ci, mk("backup", nil)),
		createRewritten(ctx, t, in, m, ci, mk("backup", &owner)),
	}
	for _, p := range upstream {
		markRunning(ctx, t, m, p, repository(t, ref), digest)
	}
	for _, p := range backup {
		markRunning(ctx, t, m, p, repository(t, ci.Status.Backup), digest)
	}
	coverageAgrees(ctx, t, in, m, ci, len(backup), len(upstream))
}

// markRunning writes p's status as a kubelet does once every container of p runs, pulled
// from repo: phase Running, each container running with imageID repo@digest.
func markRunning(ctx context.Context, t testing.TB, k *Kube, p *corev1.Pod, repo string, digest v1.Hash) {
	t.Helper()
	gomega.NewWithT(t).Eventually(func() error {
		var got corev1.Pod
		if err := k.Client.Get(ctx, client.ObjectKeyFromObject(p), &got); err != nil {
			return err
		}
		now := metav1.Now()
		got.Status.Phase = corev1.PodRunning
		got.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}}
		got.Status.ContainerStatuses = nil
		for _, c := range got.Spec.Containers {
			got.Status.ContainerStatuses = append(got.Status.ContainerStatuses, corev1.ContainerStatus{
				Name: c.Name, Image: c.Image, ImageID: repo + "@" + digest.String(), Ready: true, Started: ptr.To(true),
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
			})
		}
		return k.Client.Status().Update(ctx, &got)
	}).WithTimeout(30*time.Second).WithPolling(poll).Should(gomega.Succeed(), "marking Pod %s/%s Running in %s", p.Namespace, p.Name, k.Name)
}
