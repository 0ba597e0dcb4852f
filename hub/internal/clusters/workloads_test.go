package clusters

import (
	"testing"
	"unique"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// TestProjectWorkload_keepsOnlyWhatTheHubReads lists what a cached workload of every kind
// keeps: anything the hub reads of a workload must be in the projection, or it reads a zero
// value.
func TestProjectWorkload_keepsOnlyWhatTheHubReads(t *testing.T) {
	owner := []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: "nightly", UID: "u1", Controller: ptr(true)}}
	meta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{
			Name: "w", Namespace: "ns", UID: "u", ResourceVersion: "7", Generation: 3, CreationTimestamp: metav1.Now(),
			OwnerReferences: owner,
			Labels:          map[string]string{"app": "web", v1alpha1.IgnoreLabel: v1alpha1.IgnoreValue},
			Annotations:     map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}", workload.OriginalImagesAnnotation: `{"containers/web":"nginx","initContainers/init":"nginx"}`},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
		}
	}
	template := func() corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"sidecar.istio.io/inject": "true"}},
			Spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "init", Image: "busybox", Command: []string{"true"}}},
				Containers: []corev1.Container{{Name: "web", Image: "backup.example/nginx:1", Env: []corev1.EnvVar{{Name: "A", Value: "B"}},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(80)}}}}},
				Volumes:          []corev1.Volume{{Name: "v"}},
				ImagePullSecrets: []corev1.LocalObjectReference{{Name: "image-cloner-pull"}},
				RestartPolicy:    corev1.RestartPolicyNever,
			},
		}
	}
	keptMeta := Meta{Name: "w", Namespace: "ns", UID: "u", ResourceVersion: "7", OwnerReferences: owner,
		Labels: map[string]string{v1alpha1.IgnoreLabel: v1alpha1.IgnoreValue}}
	kept := func(gvk schema.GroupVersionKind) *Workload {
		w := &Workload{Meta: keptMeta,
			InitContainers: []Container{NewContainer("init", "busybox")},
			Containers:     []Container{NewContainer("web", "backup.example/nginx:1")},
			originals:      []unique.Handle[string]{unique.Make("nginx")},
		}
		w.SetGroupVersionKind(gvk)
		return w
	}
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	for _, tc := range []struct {
		name string
		in   client.Object
		out  *Workload
	}{
		{"Deployment",
			&appsv1.Deployment{ObjectMeta: meta(), Spec: appsv1.DeploymentSpec{Replicas: ptr[int32](3), Selector: selector, Template: template()},
				Status: appsv1.DeploymentStatus{ReadyReplicas: 3}},
			kept(appsv1.SchemeGroupVersion.WithKind("Deployment"))},
		{"DaemonSet",
			&appsv1.DaemonSet{ObjectMeta: meta(), Spec: appsv1.DaemonSetSpec{Selector: selector, Template: template()}, Status: appsv1.DaemonSetStatus{NumberReady: 2}},
			kept(appsv1.SchemeGroupVersion.WithKind("DaemonSet"))},
		{"StatefulSet",
			&appsv1.StatefulSet{ObjectMeta: meta(), Spec: appsv1.StatefulSetSpec{ServiceName: "web", Selector: selector, Template: template()}},
			kept(appsv1.SchemeGroupVersion.WithKind("StatefulSet"))},
		{"Job",
			&batchv1.Job{ObjectMeta: meta(), Spec: batchv1.JobSpec{BackoffLimit: ptr[int32](4), Template: template()}, Status: batchv1.JobStatus{Succeeded: 1}},
			kept(batchv1.SchemeGroupVersion.WithKind("Job"))},
		{"CronJob",
			&batchv1.CronJob{ObjectMeta: meta(), Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: template()}}}},
			kept(batchv1.SchemeGroupVersion.WithKind("CronJob"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := ProjectWorkload(tc.in.DeepCopyObject())
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.out))
			again, err := ProjectWorkload(got)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(again).To(Equal(tc.out), "a transform must be idempotent")
			// What the hub reads of it is unchanged.
			g.Expect(got.(*Workload).Images()).To(Equal(workload.Images(tc.in)))
			g.Expect(got.(*Workload).DeepCopyObject()).To(Equal(tc.out))
			g.Expect(got.(*Workload).Originals()).To(Equal([]string{"nginx"}))
		})
	}
}

func TestProjectWorkload_passesOtherObjectsThrough(t *testing.T) {
	g := NewWithT(t)
	for _, obj := range []any{
		toolscache.DeletedFinalStateUnknown{Key: "ns/w", Obj: &appsv1.Deployment{}},
		&corev1.Pod{Spec: corev1.PodSpec{NodeName: "n"}},
		&appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{MinReadySeconds: 3}},
	} {
		got, err := ProjectWorkload(obj)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got).To(BeIdenticalTo(obj))
	}
}

// Every watched kind has a projection in the member caches' options.
func TestProjections_coverEveryWatchedKind(t *testing.T) {
	g := NewWithT(t)
	p := projections()
	g.Expect(p).To(HaveLen(len(WatchedKinds())))
	for obj, opts := range p {
		g.Expect(opts.Transform).NotTo(BeNil(), "%T", obj)
	}
}

// A deep copy of a cached workload shares nothing the copy's owner could change.
func TestWorkload_DeepCopyObject(t *testing.T) {
	g := NewWithT(t)
	w := &Workload{Meta: Meta{Name: "w", Labels: map[string]string{"a": "b"},
		OwnerReferences: []metav1.OwnerReference{{Kind: "CronJob", Name: "c", Controller: ptr(true)}}},
		InitContainers: []Container{NewContainer("i", "busybox")}, Containers: []Container{NewContainer("c", "nginx")}}
	w.SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind("Deployment"))
	c := w.DeepCopyObject().(*Workload)
	g.Expect(c).To(Equal(w))
	c.Labels["a"], c.InitContainers[0], c.Containers[0] = "changed", NewContainer("i", "changed"), NewContainer("c", "changed")
	*c.OwnerReferences[0].Controller, c.OwnerReferences[0].Name = false, "changed"
	g.Expect(w.Labels["a"]).To(Equal("b"))
	g.Expect(w.OwnerReferences).To(Equal([]metav1.OwnerReference{{Kind: "CronJob", Name: "c", Controller: ptr(true)}}))
	g.Expect(w.Images()).To(Equal([]string{"busybox", "nginx"}))
	g.Expect(c.GroupVersionKind()).To(Equal(w.GroupVersionKind()))
}

// A cached object keeps the recorded originals as images, distinct and sorted, and none of an
// annotation the agent did not write.
func TestOriginalsOf(t *testing.T) {
	for _, tc := range []struct {
		name, annotation string
		want             []string
	}{
		{"none", "", nil},
		{"empty object", "{}", nil},
		{"null", "null", nil},
		{"two containers, one image", `{"containers/a":"nginx:1","initContainers/b":"nginx:1","containers/c":"busybox"}`, []string{"busybox", "nginx:1"}},
		{"not JSON", "nginx:1", nil},
		{"not strings", `{"containers/a":1}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &appsv1.Deployment{}
			if tc.annotation != "" {
				d.Annotations = map[string]string{workload.OriginalImagesAnnotation: tc.annotation}
			}
			NewWithT(t).Expect(values(originalsOf(d))).To(Equal(tc.want))
		})
	}
}
