package clusters

import (
	"testing"
	"unique"

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
		name string
		in   *corev1.Pod
		out  *Pod
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
			out: pod(&Pod{
				Meta: Meta{
					Name: "p", Namespace: "ns", UID: "u", ResourceVersion: "7", OwnerReferences: owner,
					Labels: map[string]string{v1alpha1.IgnoreLabel: "true"},
				},
				templateHash:        unique.Make("abc"),
				originals:           []unique.Handle[string]{unique.Make("nginx")},
				InitContainers:      []Container{NewContainer("init", "busybox")},
				Containers:          []Container{NewContainer("web", "nginx"), NewContainer("mesh", "envoy")},
				EphemeralContainers: []Container{NewContainer("debug", "alpine")},
				Phase:               corev1.PodRunning,
				Statuses: []ContainerStatus{
					NewContainerStatus("init", "busybox:latest", "busybox@sha256:1", false),
					NewContainerStatus("web", "nginx:latest", "nginx@sha256:2", true),
					NewContainerStatus("debug", "alpine:latest", "alpine@sha256:3", false),
				},
			}),
		},
		{
			name: "no labels or annotations to keep leaves none",
			in: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"a": "b"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}},
			out: pod(&Pod{Meta: Meta{Name: "p"}, templateHash: unique.Make(""), Containers: []Container{NewContainer("c", "i")}}),
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
			g.Expect(got.(*Pod).Images()).To(Equal(workload.Images(tc.in)), "what the hub reads of it is unchanged")
			g.Expect(got.(*Pod).DeepCopyObject()).To(Equal(tc.out))
			g.Expect(got.(*Pod).Originals()).To(Equal(tc.out.Originals()))
			g.Expect(got.(*Pod).TemplateHash()).To(Equal(tc.in.Labels[appsv1.DefaultDeploymentUniqueLabelKey]))
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

// pod sets p's TypeMeta, as ProjectPod does.
func pod(p *Pod) *Pod {
	p.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	return p
}

// A cached Pod answers which image each container was given, of any list.
func TestPod_Image(t *testing.T) {
	g := NewWithT(t)
	p := &Pod{InitContainers: []Container{NewContainer("i", "busybox")}, Containers: []Container{NewContainer("c", "nginx")},
		EphemeralContainers: []Container{NewContainer("e", "alpine")}}
	for name, want := range map[string]string{"i": "busybox", "c": "nginx", "e": "alpine", "none": ""} {
		g.Expect(p.Image(name)).To(Equal(want), name)
	}
}

func ptr[T any](v T) *T { return &v }
