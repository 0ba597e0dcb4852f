package workload_test

import (
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/pkg/workload"
)

func spec() corev1.PodSpec {
	return corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init", Image: "busybox:1.36"}},
		Containers:     []corev1.Container{{Name: "web", Image: "nginx:1.25"}, {Name: "side", Image: "busybox:1.36"}},
		EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
			Name: "debug", Image: "alpine:3.20"}}},
	}
}

func TestImages_readsEveryContainerListOfEveryKind(t *testing.T) {
	tmpl := corev1.PodTemplateSpec{Spec: spec()}
	cases := []struct {
		name string
		obj  client.Object
	}{
		{"Deployment", &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: tmpl}}},
		{"DaemonSet", &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Template: tmpl}}},
		{"StatefulSet", &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Template: tmpl}}},
		{"Job", &batchv1.Job{Spec: batchv1.JobSpec{Template: tmpl}}},
		{"CronJob", &batchv1.CronJob{Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}}}}},
		{"Pod", &corev1.Pod{Spec: spec()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(workload.Images(tc.obj)).To(Equal([]string{"alpine:3.20", "busybox:1.36", "nginx:1.25"}))
		})
	}
	NewWithT(t).Expect(workload.Images(&corev1.ConfigMap{})).To(BeNil())
}

func TestRewrite_recordsOriginalsAndRestoreUndoesIt(t *testing.T) {
	g := NewWithT(t)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d", Annotations: map[string]string{"keep": "me"}},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: spec()}}}
	backup := map[string]string{"busybox:1.36": "backup.io/acme/busybox:1.36", "nginx:1.25": "backup.io/acme/nginx:1.25"}
	changed, err := workload.Rewrite(d, func(img string) (string, bool) { v, ok := backup[img]; return v, ok })
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(changed).To(HaveLen(3))
	g.Expect(workload.Images(d)).To(Equal([]string{"alpine:3.20", "backup.io/acme/busybox:1.36", "backup.io/acme/nginx:1.25"}))
	g.Expect(d.Annotations[workload.OriginalImagesAnnotation]).To(MatchJSON(
		`{"initContainers/init":"busybox:1.36","containers/web":"nginx:1.25","containers/side":"busybox:1.36"}`))

	// A second rewrite (e.g. to a digest-pinned backup) keeps the first original.
	_, err = workload.Rewrite(d, func(img string) (string, bool) { return img + "@sha256:" + "00", img == "backup.io/acme/nginx:1.25" })
	g.Expect(err).NotTo(HaveOccurred())
	orig, err := workload.Originals(d)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(orig["containers/web"]).To(Equal("nginx:1.25"))

	n, err := workload.Restore(d)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(n).To(Equal(3))
	g.Expect(d.Spec.Template.Spec).To(Equal(spec()))
	g.Expect(d.Annotations).To(Equal(map[string]string{"keep": "me"}))
}

func TestRewrite_noChangeLeavesNoAnnotation(t *testing.T) {
	g := NewWithT(t)
	d := &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: spec()}}}
	changed, err := workload.Rewrite(d, func(string) (string, bool) { return "", false })
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(changed).To(BeEmpty())
	g.Expect(d.Annotations).To(BeEmpty())
}

func TestOriginals_rejectsBrokenAnnotation(t *testing.T) {
	g := NewWithT(t)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d",
		Annotations: map[string]string{workload.OriginalImagesAnnotation: "{not json"}}}
	_, err := workload.Originals(d)
	g.Expect(err).To(MatchError(ContainSubstring("ns/d is not a JSON object")))
	_, err = workload.Rewrite(d, func(string) (string, bool) { return "x", true })
	g.Expect(err).To(HaveOccurred(), "a broken record must stop a rewrite rather than lose the originals")
}

func TestPatchableKinds_leaveOutOnlyJobs(t *testing.T) {
	var names []string
	for _, k := range workload.PatchableKinds() {
		names = append(names, fmt.Sprintf("%T", k))
	}
	if want := []string{"*v1.Deployment", "*v1.DaemonSet", "*v1.StatefulSet", "*v1.CronJob"}; strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("PatchableKinds() = %v, want %v", names, want)
	}
}

func TestNewList_ofEveryKind(t *testing.T) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	for _, k := range workload.Kinds() {
		list, err := workload.NewList(s, k)
		if err != nil {
			t.Fatalf("NewList(%T): %v", k, err)
		}
		if got, want := fmt.Sprintf("%T", list), fmt.Sprintf("%T", k)+"List"; got != want {
			t.Errorf("NewList(%T) = %s, want %s", k, got, want)
		}
	}
	if _, err := workload.NewList(runtime.NewScheme(), &appsv1.Deployment{}); err == nil {
		t.Error("NewList with a scheme that lacks the kind must fail")
	}
}
