package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// NodesInput is what the specs that need real nodes (kind clusters, make e2e-kind) take: the
// fleet, and the few things about its registries that only the machine running them can do.
type NodesInput struct {
	FleetInput
	// RunnableBinary is a static Linux binary for this machine's architecture that runs until
	// SIGTERM (hack/kind/pause): the specs' workloads need containers that start and stay up,
	// which pushImage's random layers cannot.
	RunnableBinary string
	// BackupLog returns the backup registry's log so far (its access log among it).
	BackupLog func(context.Context) (string, error)
	// PullUser is the backup registry's account in the members' pull Secret; PushUser the
	// hub's. PodsRunFromBackupSpec checks that the nodes pulled as the first, not the second.
	PullUser, PushUser string
	// StopUpstream stops the upstream registry, StartUpstream starts it again.
	StopUpstream, StartUpstream func(context.Context) error
	// IgnoredNamespace is a namespace image-cloner ignores in every member (kube-system by
	// default): its workloads keep their upstream images.
	IgnoredNamespace string
}

// pushRunnable pushes an image of one file, in.RunnableBinary as its entrypoint, to the
// upstream registry under e2e/<repo>-<random>:v1, and returns its reference and digest.
func pushRunnable(t testing.TB, in NodesInput, repo string) (string, v1.Hash) {
	t.Helper()
	g := gomega.NewWithT(t)
	bin, err := os.ReadFile(in.RunnableBinary)
	g.Expect(err).NotTo(gomega.HaveOccurred(), "the runnable binary")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	g.Expect(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "run", Mode: 0o755, Size: int64(len(bin))})).To(gomega.Succeed())
	_, err = tw.Write(bin)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(tw.Close()).To(gomega.Succeed())
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	g.Expect(err).NotTo(gomega.HaveOccurred())
	img, err := mutate.AppendLayers(empty.Image, layer)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	cf, err := img.ConfigFile()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Entrypoint = []string{"/run"}
	img, err = mutate.ConfigFile(img, cf)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	ref, err := name.ParseReference(fmt.Sprintf("%s/e2e/%s-%s:v1", in.Upstream.Host, repo, randomSuffix()))
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(remote.Write(ref, img, in.Upstream.remoteOptions()...)).To(gomega.Succeed())
	d, err := img.Digest()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	return ref.String(), d
}

// alwaysPull makes the kubelet resolve the image with the registry for every container it
// starts, even when the node has it: that is what shows which registry a Pod came from.
func alwaysPull(spec *corev1.PodSpec) {
	for i := range spec.Containers {
		spec.Containers[i].ImagePullPolicy = corev1.PullAlways
	}
}

// podsOf returns the Pods of workload name (a Deployment's through its ReplicaSets, or a
// DaemonSet's) in ns.
func podsOf(ctx context.Context, k *Kube, ns, name string) ([]corev1.Pod, error) {
	var pods corev1.PodList
	if err := k.Client.List(ctx, &pods, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		for _, o := range p.OwnerReferences {
			if o.Name == name || (o.Kind == "ReplicaSet" && strings.HasPrefix(o.Name, name+"-")) {
				out = append(out, p)
				break
			}
		}
	}
	return out, nil
}

// runsFrom says why pod is not Running with every container's image in repository repo and
// started from digest (status.imageID), or "" when it is. containerd reports as imageID the
// first repository it stored the content under, which is upstream when an unpatched Pod pulled
// it first on that node: the digest is what identifies the image, and pulledBy the registry.
func runsFrom(pod corev1.Pod, repo string, digest v1.Hash) string {
	if pod.DeletionTimestamp != nil {
		return fmt.Sprintf("Pod %s is being deleted", pod.Name)
	}
	if pod.Status.Phase != corev1.PodRunning {
		return fmt.Sprintf("Pod %s is %s: %s", pod.Name, pod.Status.Phase, waiting(pod))
	}
	for _, c := range pod.Spec.Containers {
		if !strings.HasPrefix(c.Image, repo+":") && !strings.HasPrefix(c.Image, repo+"@") {
			return fmt.Sprintf("Pod %s container %s has image %s, not from %s", pod.Name, c.Name, c.Image, repo)
		}
	}
	if len(pod.Status.ContainerStatuses) != len(pod.Spec.Containers) {
		return fmt.Sprintf("Pod %s: %d container statuses for %d containers", pod.Name, len(pod.Status.ContainerStatuses), len(pod.Spec.Containers))
	}
	for _, s := range pod.Status.ContainerStatuses {
		if s.State.Running == nil {
			return fmt.Sprintf("Pod %s container %s is not running: %+v", pod.Name, s.Name, s.State)
		}
		if !strings.HasSuffix(s.ImageID, "@"+digest.String()) {
			return fmt.Sprintf("Pod %s container %s runs imageID %s, want digest %s", pod.Name, s.Name, s.ImageID, digest)
		}
	}
	return ""
}

func waiting(pod corev1.Pod) string {
	var rs []string
	for _, s := range pod.Status.ContainerStatuses {
		if s.State.Waiting != nil {
			rs = append(rs, s.State.Waiting.Reason+": "+s.State.Waiting.Message)
		}
	}
	return strings.Join(rs, "; ")
}

// waitRunningFrom waits until workload name in ns has at least one Pod, every Pod of it runs
// from repo@digest, and none is in skip (Pods deleted before), and returns them.
func waitRunningFrom(ctx context.Context, t testing.TB, in NodesInput, k *Kube, ns, name, repo string, digest v1.Hash, skip map[types.UID]bool) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	gomega.NewWithT(t).Eventually(func(g gomega.Gomega) {
		var err error
		pods, err = podsOf(ctx, k, ns, name)
		g.Expect(err).NotTo(gomega.HaveOccurred())
		g.Expect(pods).NotTo(gomega.BeEmpty(), "%s/%s has no Pod in %s", ns, name, k.Name)
		for _, p := range pods {
			g.Expect(skip[p.UID]).To(gomega.BeFalse(), "Pod %s was deleted and is still listed", p.Name)
			g.Expect(runsFrom(p, repo, digest)).To(gomega.BeEmpty(), "in %s", k.Name)
		}
	}).WithTimeout(2 * in.timeout()).WithPolling(time.Second).Should(gomega.Succeed())
	return pods
}

// repository returns ref without its tag or digest.
func repository(t testing.TB, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	gomega.NewWithT(t).Expect(err).NotTo(gomega.HaveOccurred())
	return r.Context().Name()
}

// pulledBy reports whether the registry log has a successful manifest request (HEAD or GET) of
// repository path repo (e.g. "backup/172.18.0.5-5000_e2e_run-1a2b3c4d__...") made by a node's
// containerd as user. The kubelet resolves the image with the registry at every start of an
// imagePullPolicy: Always container, even when the node has its blobs already.
func pulledBy(log, repo, user string) bool {
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, `msg="response completed"`) &&
			strings.Contains(line, `http.request.uri="/v2/`+repo+`/manifests/`) &&
			strings.Contains(line, `http.request.useragent="containerd/`) &&
			strings.Contains(line, "auth.user.name="+user+" ") &&
			strings.Contains(line, "http.response.status=200") {
			return true
		}
	}
	return false
}

// PodsRunFromBackupSpec: in every member, a Deployment's and a DaemonSet's Pods run from the
// backup once image-cloner has patched them: each is Running, each container's image is in the
// backup repository and its status.imageID has the source's digest (the backup's), and the
// backup registry's log shows the nodes' containerd resolving it with the pull-only account,
// never the push account. A control workload with the same image in an
// ignored namespace runs from upstream, and the same imageID check rejects it.
func PodsRunFromBackupSpec(ctx context.Context, t *testing.T, in NodesInput) {
	g := gomega.NewWithT(t)
	ref, digest := pushRunnable(t, in, "run")
	upstreamRepo := repository(t, ref)
	nss := map[string]string{}
	for _, m := range in.Members {
		ns := newNamespace(ctx, t, m)
		nss[m.Name] = ns
		d := deployment(ns, "web", ref)
		alwaysPull(&d.Spec.Template.Spec)
		ds := daemonSet(ns, "node", ref)
		alwaysPull(&ds.Spec.Template.Spec)
		g.Expect(m.Client.Create(ctx, d)).To(gomega.Succeed())
		g.Expect(m.Client.Create(ctx, ds)).To(gomega.Succeed())
	}
	control := ignoredDeployment(ctx, t, in, in.Members[0], ref)

	var backupPath string
	for _, m := range in.Members {
		ci := waitReady(ctx, t, in.FleetInput, m, ref)
		g.Expect(ci.Status.Digest).To(gomega.Equal(digest.String()))
		backupRepo := repository(t, ci.Status.Backup)
		g.Expect(backupRepo).NotTo(gomega.Equal(upstreamRepo))
		r, _ := name.NewRepository(backupRepo)
		backupPath = r.RepositoryStr()
		for _, w := range []string{"web", "node"} {
			pods := waitRunningFrom(ctx, t, in, m, nss[m.Name], w, backupRepo, digest, nil)
			t.Logf("%s: %s/%s: %d Pod(s) run from %s@%s", m.Name, nss[m.Name], w, len(pods), backupRepo, digest)
		}
		if m == in.Members[0] {
			// The control: the same image, unpatched, runs from upstream, and runsFrom rejects
			// it as a backup Pod; so the check above can fail.
			pods := waitRunningFrom(ctx, t, in, m, control.Namespace, control.Name, upstreamRepo, digest, nil)
			g.Expect(runsFrom(pods[0], backupRepo, digest)).NotTo(gomega.BeEmpty(), "runsFrom accepted an upstream Pod as a backup one")
		}
	}

	g.Eventually(func(g gomega.Gomega) {
		log, err := in.BackupLog(ctx)
		g.Expect(err).NotTo(gomega.HaveOccurred())
		g.Expect(pulledBy(log, backupPath, in.PullUser)).To(gomega.BeTrue(), "no containerd manifest request of %s by %s in the backup registry's log", backupPath, in.PullUser)
		g.Expect(pulledBy(log, backupPath, in.PushUser)).To(gomega.BeFalse(), "a node resolved %s with the push account %s", backupPath, in.PushUser)
	}).WithTimeout(in.timeout()).WithPolling(time.Second).Should(gomega.Succeed())
}

// ignoredDeployment creates a Deployment of ref in the ignored namespace of k (always pulling),
// deleted when the test ends.
func ignoredDeployment(ctx context.Context, t testing.TB, in NodesInput, k *Kube, ref string) *appsv1.Deployment {
	t.Helper()
	d := deployment(in.IgnoredNamespace, "e2e-ignored-"+randomSuffix(), ref)
	d.Spec.Selector.MatchLabels = map[string]string{"app": d.Name}
	d.Spec.Template.Labels = map[string]string{"app": d.Name}
	alwaysPull(&d.Spec.Template.Spec)
	gomega.NewWithT(t).Expect(k.Client.Create(ctx, d)).To(gomega.Succeed())
	t.Cleanup(func() { _ = k.Client.Delete(context.WithoutCancel(ctx), d) })
	return d
}

// UpstreamGoneSpec, the promise: once an image is backed up, its workloads keep starting when
// the upstream copy is gone. In the first member, a patched Deployment runs from the backup and
// a control Deployment of the same image in an ignored namespace runs from upstream. Then the
// image's manifest is deleted upstream and the upstream registry stopped, and both
// Deployments' Pods deleted: the patched one's replacements run from the backup, while the
// control's replacement cannot pull (ErrImagePull or ImagePullBackOff), which shows the
// replacements did need a registry. It starts the upstream registry again at the end.
func UpstreamGoneSpec(ctx context.Context, t *testing.T, in NodesInput) {
	g := gomega.NewWithT(t)
	m := in.Members[0]
	ref, digest := pushRunnable(t, in, "gone")
	ns := newNamespace(ctx, t, m)
	d := deployment(ns, "web", ref)
	alwaysPull(&d.Spec.Template.Spec)
	g.Expect(m.Client.Create(ctx, d)).To(gomega.Succeed())
	control := ignoredDeployment(ctx, t, in, m, ref)

	ci := waitReady(ctx, t, in.FleetInput, m, ref)
	backupRepo := repository(t, ci.Status.Backup)
	before := map[types.UID]bool{}
	for _, p := range waitRunningFrom(ctx, t, in, m, ns, "web", backupRepo, digest, nil) {
		before[p.UID] = true
	}
	for _, p := range waitRunningFrom(ctx, t, in, m, control.Namespace, control.Name, repository(t, ref), digest, nil) {
		before[p.UID] = true
	}

	// Upstream gone: the manifest deleted, then the registry stopped.
	r, err := name.ParseReference(ref)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	byDigest := r.Context().Digest(digest.String())
	g.Expect(remote.Delete(byDigest, in.Upstream.remoteOptions()...)).To(gomega.Succeed(), "deleting %s upstream", byDigest)
	_, err = remote.Head(byDigest, in.Upstream.remoteOptions()...)
	g.Expect(err).To(gomega.HaveOccurred(), "%s is still served upstream after its delete", byDigest)
	g.Expect(in.StopUpstream(ctx)).To(gomega.Succeed())
	t.Cleanup(func() {
		if err := in.StartUpstream(context.WithoutCancel(ctx)); err != nil {
			t.Errorf("starting the upstream registry again: %v", err)
		}
	})

	for _, w := range []*appsv1.Deployment{d, control} {
		g.Expect(m.Client.DeleteAllOf(ctx, &corev1.Pod{}, client.InNamespace(w.Namespace),
			client.MatchingLabels(w.Spec.Template.Labels))).To(gomega.Succeed())
	}
	pods := waitRunningFrom(ctx, t, in, m, ns, "web", backupRepo, digest, before)
	t.Logf("%s: after upstream went away, %d new Pod(s) of %s/web run from %s@%s", m.Name, len(pods), ns, backupRepo, digest)

	// The control's new Pod: the same image, not patched, has nowhere to pull from.
	g.Eventually(func(g gomega.Gomega) {
		cpods, err := podsOf(ctx, m, control.Namespace, control.Name)
		g.Expect(err).NotTo(gomega.HaveOccurred())
		var reasons []string
		for _, p := range cpods {
			if before[p.UID] {
				continue
			}
			g.Expect(p.Spec.Containers[0].Image).To(gomega.Equal(ref), "the ignored namespace's Pod was patched")
			for _, s := range p.Status.ContainerStatuses {
				if s.State.Waiting != nil {
					reasons = append(reasons, s.State.Waiting.Reason)
				}
			}
		}
		g.Expect(reasons).To(gomega.ContainElement(gomega.BeElementOf("ErrImagePull", "ImagePullBackOff")),
			"the control Pod in %s/%s should fail to pull %s with upstream gone", control.Namespace, control.Name, ref)
	}).WithTimeout(in.timeout()).WithPolling(time.Second).Should(gomega.Succeed())
	var got appsv1.Deployment
	g.Expect(m.Client.Get(ctx, client.ObjectKeyFromObject(control), &got)).To(gomega.Succeed())
	g.Expect(got.Spec.Template.Spec.Containers[0].Image).To(gomega.Equal(ref), "the control Deployment was patched")
}
