package clusters

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// TestProjectPod_keepsOnlyWhatTheHubReads lists what a cached Pod keeps: anything the hub
// reads of a Pod must be in want, or it reads a zero value.
func TestProjectPod_keepsOnlyWhatTheHubReads(t *testing.T) {
	owner := []metav1.OwnerReference{{APIVersion: "widgets.example.com/v1", Kind: "Widget", Name: "w", UID: "u1", Controller: ptr(true)}}
	started := metav1.Now()
	for _, tc := range []struct {
		name    string
		in, out *corev1.Pod
	}{
		{
			name: "a Pod as the API server serves it",
			in: &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{
					Name: "p", Namespace: "ns", UID: "u", ResourceVersion: "7", Generation: 1, CreationTimestamp: started,
					OwnerReferences: owner,
					Labels:          map[string]string{"app": "web", v1alpha1.IgnoreLabel: "true", appsv1.DefaultDeploymentUniqueLabelKey: "abc"},
					Annotations:     map[string]string{"big": "x", workload.OriginalImagesAnnotation: `{"containers/web":"nginx"}`},
					ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
				},
				Spec: corev1.PodSpec{
					InitContainers: []corev1.Container{{Name: "init", Image: "busybox", Command: []string{"true"}}},
					Containers: []corev1.Container{{Name: "web", Image: "nginx", Env: []corev1.EnvVar{{Name: "A", Value: "B"}}},
						{Name: "mesh", Image: "envoy", Args: []string{"--x"}}},
					EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "alpine", Stdin: true}}},
					Volumes:             []corev1.Volume{{Name: "v"}},
					NodeName:            "n1",
				},
				Status: corev1.PodStatus{
					Phase:      corev1.PodRunning,
					Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
					PodIP:      "10.0.0.1",
					InitContainerStatuses: []corev1.ContainerStatus{{Name: "init", Image: "busybox:latest", ImageID: "busybox@sha256:1",
						State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed"}}}},
					ContainerStatuses: []corev1.ContainerStatus{{Name: "web", Image: "nginx:latest", ImageID: "nginx@sha256:2", Ready: true, RestartCount: 2,
						State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}}},
					EphemeralContainerStatuses: []corev1.ContainerStatus{{Name: "debug", Image: "alpine:latest", ImageID: "alpine@sha256:3",
						State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}},
				},
			},
			out: &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{
					Name: "p", Namespace: "ns", UID: "u", ResourceVersion: "7", OwnerReferences: owner,
					Labels:      map[string]string{v1alpha1.IgnoreLabel: "true", appsv1.DefaultDeploymentUniqueLabelKey: "abc"},
					Annotations: map[string]string{workload.OriginalImagesAnnotation: `{"containers/web":"nginx"}`},
				},
				Spec: corev1.PodSpec{
					InitContainers:      []corev1.Container{{Name: "init", Image: "busybox"}},
					Containers:          []corev1.Container{{Name: "web", Image: "nginx"}, {Name: "mesh", Image: "envoy"}},
					EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "alpine"}}},
				},
				Status: corev1.PodStatus{
					Phase:                 corev1.PodRunning,
					InitContainerStatuses: []corev1.ContainerStatus{{Name: "init", Image: "busybox:latest", ImageID: "busybox@sha256:1"}},
					ContainerStatuses: []corev1.ContainerStatus{{Name: "web", Image: "nginx:latest", ImageID: "nginx@sha256:2",
						State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
					EphemeralContainerStatuses: []corev1.ContainerStatus{{Name: "debug", Image: "alpine:latest", ImageID: "alpine@sha256:3"}},
				},
			},
		},
		{
			name: "no labels or annotations to keep leaves none",
			in: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"a": "b"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}},
			out: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := ProjectPod(tc.in.DeepCopy())
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.out))
			again, err := ProjectPod(got)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(again).To(Equal(tc.out), "a transform must be idempotent")
		})
	}
}

func TestProjectPod_passesOtherObjectsThrough(t *testing.T) {
	g := NewWithT(t)
	tomb := toolscache.DeletedFinalStateUnknown{Key: "ns/p", Obj: &corev1.Pod{}}
	got, err := ProjectPod(tomb)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(tomb))
	cm := &corev1.ConfigMap{Data: map[string]string{"a": "b"}}
	got, err = ProjectPod(cm)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(BeIdenticalTo(cm))
}

func ptr[T any](v T) *T { return &v }
