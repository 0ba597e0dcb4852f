package clusters

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
			Annotations:     map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}", workload.OriginalImagesAnnotation: `{"containers/web":"nginx"}`},
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
	keptMeta := metav1.ObjectMeta{Name: "w", Namespace: "ns", UID: "u", ResourceVersion: "7", OwnerReferences: owner,
		Labels:      map[string]string{v1alpha1.IgnoreLabel: v1alpha1.IgnoreValue},
		Annotations: map[string]string{workload.OriginalImagesAnnotation: `{"containers/web":"nginx"}`}}
	keptTemplate := corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init", Image: "busybox"}},
		Containers:     []corev1.Container{{Name: "web", Image: "backup.example/nginx:1"}},
	}}
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	for _, tc := range []struct {
		name    string
		in, out client.Object
	}{
		{"Deployment",
			&appsv1.Deployment{ObjectMeta: meta(), Spec: appsv1.DeploymentSpec{Replicas: ptr[int32](3), Selector: selector, Template: template()},
				Status: appsv1.DeploymentStatus{ReadyReplicas: 3}},
			&appsv1.Deployment{ObjectMeta: keptMeta, Spec: appsv1.DeploymentSpec{Template: keptTemplate}}},
		{"DaemonSet",
			&appsv1.DaemonSet{ObjectMeta: meta(), Spec: appsv1.DaemonSetSpec{Selector: selector, Template: template()}, Status: appsv1.DaemonSetStatus{NumberReady: 2}},
			&appsv1.DaemonSet{ObjectMeta: keptMeta, Spec: appsv1.DaemonSetSpec{Template: keptTemplate}}},
		{"StatefulSet",
			&appsv1.StatefulSet{ObjectMeta: meta(), Spec: appsv1.StatefulSetSpec{ServiceName: "web", Selector: selector, Template: template()}},
			&appsv1.StatefulSet{ObjectMeta: keptMeta, Spec: appsv1.StatefulSetSpec{Template: keptTemplate}}},
		{"Job",
			&batchv1.Job{ObjectMeta: meta(), Spec: batchv1.JobSpec{BackoffLimit: ptr[int32](4), Template: template()}, Status: batchv1.JobStatus{Succeeded: 1}},
			&batchv1.Job{ObjectMeta: keptMeta, Spec: batchv1.JobSpec{Template: keptTemplate}}},
		{"CronJob",
			&batchv1.CronJob{ObjectMeta: meta(), Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: template()}}}},
			&batchv1.CronJob{ObjectMeta: keptMeta, Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: keptTemplate}}}}},
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
			g.Expect(workload.Images(got.(client.Object))).To(Equal(workload.Images(tc.in)))
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
