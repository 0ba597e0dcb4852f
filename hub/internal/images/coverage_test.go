package images_test

import (
	"context"
	"errors"
	"testing"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-cloner/image-cloner/hub/internal/images"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// running gives p the status of a Pod whose containers all run.
func running(t *testing.T, p *corev1.Pod) {
	t.Helper()
	p.Status.Phase = corev1.PodRunning
	p.Status.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}})
	}
	NewWithT(t).Expect(suite.cluster.Client.Status().Update(t.Context(), p)).To(Succeed())
}

func coverage(t *testing.T) images.Coverage {
	t.Helper()
	var cov []images.Coverage
	err := testenv.WaitFor(t.Context(), wait, func(ctx context.Context) (bool, error) {
		var err error
		cov, err = suite.reconciler.Coverage(ctx)
		return len(cov) == 1, err // none until the member is connected
	})
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return cov[0]
}

// Every running container counts once, in the state that says where its image comes from;
// a Pod that does not run counts nothing. The figures are deltas: other tests share the member.
func TestCoverage_countsRunningContainersByWhereTheirImageComesFrom(t *testing.T) {
	ready, failed := "registry.example/coverage/ready:1", "registry.example/coverage/failed:1"
	script(ready)
	suite.copier.set(failed, step{err: errors.New("boom")})
	before := coverage(t)

	ns := newNamespace(t)
	ensureNamespace(t, ignoredNamespace)
	for _, p := range []*corev1.Pod{
		createPod(t, ns, nil, "backup.example/acme/registry.example_coverage_app:1"),
		createPod(t, ns, nil, ready),                 // bare: owner not patchable
		createPod(t, ns, ofDeployment("web"), ready), // a Deployment's, not patched yet
		// A bare Job's: its template is immutable, so only the Pod webhook can rewrite it.
		createPod(t, ns, ownedBy("batch/v1", "Job", createJob(t, ns, "bare", nil, ready).Name), ready),
		// A CronJob's Job's: the next Jobs come from the patched CronJob.
		createPod(t, ns, ownedBy("batch/v1", "Job", createJob(t, ns, "nightly-29000000", ownedBy("batch/v1", "CronJob", "nightly"), ready).Name), ready),
		createPod(t, ns, nil, failed),
		createPod(t, ns, nil, "registry.example/ignored/coverage:1"),
		createPod(t, ignoredNamespace, nil, ready),
		createPod(t, ns, func(p *corev1.Pod) { p.Labels = map[string]string{v1alpha1.IgnoreLabel: v1alpha1.IgnoreValue} }, ready),
	} {
		running(t, p)
	}
	createPod(t, ns, nil, ready) // Pending: runs nothing
	waitFor(t, ready, "Ready", isReady)
	waitFor(t, failed, "Failed", func(ci *v1alpha1.ClonedImage) bool { return ci.Status.Phase == v1alpha1.PhaseFailed })

	want := map[images.ContainerState]int{
		images.FromBackup: 1, images.OwnerNotPatchable: 2, images.NotPatchedYet: 2, images.CopyFailed: 1,
		images.IgnoredByRule: 1, images.NamespaceIgnored: 1, images.OptedOut: 1,
	}
	var got map[images.ContainerState]int
	var after images.Coverage
	err := testenv.WaitFor(t.Context(), wait, func(context.Context) (bool, error) {
		after = coverage(t)
		got = map[images.ContainerState]int{}
		for state, n := range after.Containers {
			if d := n - before.Containers[state]; d != 0 {
				got[state] = d
			}
		}
		return len(got) == len(want) && equal(got, want), nil
	})
	NewWithT(t).Expect(err).NotTo(HaveOccurred(), "coverage delta %v, want %v", got, want)
	NewWithT(t).Expect(after.Failed[v1alpha1.ReasonCopyFailed] - before.Failed[v1alpha1.ReasonCopyFailed]).To(Equal(1))
}

// createJob creates Job name in ns running image, its owner set by owned (if not nil). There
// is no Job controller: it makes no Pods.
func createJob(t *testing.T, ns, name string, owned func(*corev1.Pod), image string) *batchv1.Job {
	t.Helper()
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "c0", Image: image}}}}}}
	if owned != nil {
		// ownedBy sets a Pod's owner references; a Job's are the same field.
		p := &corev1.Pod{}
		owned(p)
		j.OwnerReferences = p.OwnerReferences
	}
	NewWithT(t).Expect(suite.cluster.Client.Create(t.Context(), j)).To(Succeed())
	return j
}

func equal(a, b map[images.ContainerState]int) bool {
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}
