package admission

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/image-cloner/image-cloner/internal/backups"
	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/imageref"
)

const digest = "sha256:2222222222222222222222222222222222222222222222222222222222222222"

func scheme(t *testing.T) *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{appsv1.AddToScheme, batchv1.AddToScheme, corev1.AddToScheme, apiv1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// fixture: nginx:1.25 has a Ready backup, redis:7 has none.
func fixture(t *testing.T, s *backups.Policy) (*Validator, *Mutator, client.Client) {
	sch := scheme(t)
	ref, _ := imageref.Parse("nginx:1.25")
	ready := &apiv1.ClonedImage{
		ObjectMeta: metav1.ObjectMeta{Name: imageref.ObjectName(ref)},
		Spec:       apiv1.ClonedImageSpec{Source: ref.String()},
		Status:     apiv1.ClonedImageStatus{Phase: apiv1.PhaseReady, Backup: "backup.example.com/acme/docker.io_library_nginx:1.25", Digest: digest},
	}
	c := fake.NewClientBuilder().WithScheme(sch).
		WithObjects(ready, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}).
		WithStatusSubresource(&apiv1.ClonedImage{}).
		WithIndex(&apiv1.ClonedImage{}, backups.BackupIndex, func(o client.Object) []string {
			ci := o.(*apiv1.ClonedImage)
			if !ci.IsReady() {
				return nil
			}
			r, _ := imageref.Parse(ci.Status.Backup)
			return []string{r.String(), r.WithDigest(ci.Status.Digest).String()}
		}).Build()
	l := &backups.Lookup{Reader: c}
	dec := admission.NewDecoder(sch)
	return &Validator{Client: c, Reader: c, Lookup: l, Policy: backups.Static(s), Decoder: dec},
		&Mutator{Reader: c, Lookup: l, Policy: backups.Static(s), Decoder: dec}, c
}

func req(t *testing.T, op admissionv1.Operation, kind metav1.GroupVersionKind, obj, old client.Object) admission.Request {
	raw := func(o client.Object) runtime.RawExtension {
		if o == nil {
			return runtime.RawExtension{}
		}
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		return runtime.RawExtension{Raw: b}
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Kind: kind, Operation: op, Namespace: obj.GetNamespace(), Name: obj.GetName(),
		Object: raw(obj), OldObject: raw(old),
	}}
}

var deploymentKind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}

func deployment(images ...string) *appsv1.Deployment {
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web"},
	}
	for i, img := range images {
		d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: string(rune('a' + i)), Image: img})
	}
	return d
}

func enforce() *backups.Policy {
	s := backups.Defaults(apiv1.DefaultNamespace)
	s.WebhookMode = backups.Enforce
	return s
}

func count(t *testing.T, c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestValidator_countsResultsAndRequestedCopies(t *testing.T) {
	g := NewWithT(t)
	v, _, _ := fixture(t, enforce())
	denied := requestsTotal.WithLabelValues("validate", "Deployment", resultDenied)
	allowed := requestsTotal.WithLabelValues("validate", "Deployment", resultAllowed)
	d0, a0, c0 := count(t, denied), count(t, allowed), count(t, copiesRequestedTotal)
	v.Handle(context.Background(), req(t, admissionv1.Create, deploymentKind, deployment("redis:7", "memcached:1"), nil))
	v.Handle(context.Background(), req(t, admissionv1.Create, deploymentKind, deployment("nginx:1.25"), nil))
	g.Expect(count(t, denied) - d0).To(Equal(1.0))
	g.Expect(count(t, allowed) - a0).To(Equal(1.0))
	g.Expect(count(t, copiesRequestedTotal) - c0).To(Equal(2.0))
}

func TestValidator_updateChecksOnlyNewImages(t *testing.T) {
	g := NewWithT(t)
	v, _, _ := fixture(t, enforce())
	ctx := context.Background()
	// redis:7 was already there: scaling or patching another container is not refused.
	resp := v.Handle(ctx, req(t, admissionv1.Update, deploymentKind, deployment("redis:7", "nginx:1.25"), deployment("redis:7", "busybox:1")))
	g.Expect(resp.Allowed).To(BeTrue(), resp.Result.Message)
	// A new image without a backup is refused on update too.
	resp = v.Handle(ctx, req(t, admissionv1.Update, deploymentKind, deployment("redis:7", "memcached:1"), deployment("redis:7")))
	g.Expect(resp.Allowed).To(BeFalse())
	g.Expect(resp.Result.Message).To(ContainSubstring(`image "memcached:1"`))
	g.Expect(resp.Result.Message).NotTo(ContainSubstring("redis"))
}

func TestValidator_acceptsReadyAndBackupImages(t *testing.T) {
	g := NewWithT(t)
	s := enforce()
	n, err := imageref.NewNamer("backup.example.com/acme", imageref.Flat)
	g.Expect(err).NotTo(HaveOccurred())
	s.Namer = n
	v, _, _ := fixture(t, s)
	for _, img := range []string{
		"nginx:1.25", "docker.io/library/nginx:1.25", // the source, any spelling
		"backup.example.com/acme/docker.io_library_nginx:1.25@" + digest, // pinned backup
		"backup.example.com/acme/other:1",                                // under BACKUP_REGISTRY
	} {
		resp := v.Handle(context.Background(), req(t, admissionv1.Create, deploymentKind, deployment(img), nil))
		g.Expect(resp.Allowed).To(BeTrue(), "%s: %s", img, resp.Result.Message)
	}
}

func TestValidator_dryRunRequestsNothing(t *testing.T) {
	g := NewWithT(t)
	v, _, c := fixture(t, enforce())
	r := req(t, admissionv1.Create, deploymentKind, deployment("redis:7"), nil)
	r.DryRun = ptr.To(true)
	resp := v.Handle(context.Background(), r)
	g.Expect(resp.Allowed).To(BeFalse())
	g.Expect(resp.Result.Message).To(ContainSubstring("dry run"))
	var list apiv1.ClonedImageList
	g.Expect(c.List(context.Background(), &list)).To(Succeed())
	g.Expect(list.Items).To(HaveLen(1), "only the fixture's")
}

func TestValidator_warnAdmitsWithOneWarningPerImage(t *testing.T) {
	g := NewWithT(t)
	v, _, c := fixture(t, backups.Defaults(apiv1.DefaultNamespace))
	resp := v.Handle(context.Background(), req(t, admissionv1.Create, deploymentKind, deployment("redis:7", "memcached:1", "nginx:1.25"), nil))
	g.Expect(resp.Allowed).To(BeTrue())
	g.Expect(resp.Warnings).To(HaveLen(2))
	g.Expect(strings.Join(resp.Warnings, "\n")).To(And(ContainSubstring(`"redis:7"`), ContainSubstring(`"memcached:1"`), ContainSubstring("a copy has been requested")))
	var list apiv1.ClonedImageList
	g.Expect(c.List(context.Background(), &list)).To(Succeed())
	g.Expect(list.Items).To(HaveLen(3))
}

func TestMutator_rewritesWithoutTouchingJobsOnUpdate(t *testing.T) {
	g := NewWithT(t)
	_, m, _ := fixture(t, backups.Defaults(apiv1.DefaultNamespace))
	ctx := context.Background()
	resp := m.Handle(ctx, req(t, admissionv1.Create, deploymentKind, deployment("nginx:1.25", "redis:7"), nil))
	g.Expect(resp.Allowed).To(BeTrue())
	g.Expect(resp.Patches).NotTo(BeEmpty())
	var paths []string
	for _, p := range resp.Patches {
		paths = append(paths, p.Path)
		if p.Path == "/spec/template/spec/containers/0/image" {
			g.Expect(p.Value).To(Equal("backup.example.com/acme/docker.io_library_nginx:1.25@" + digest))
		}
	}
	g.Expect(paths).To(ContainElement("/spec/template/spec/containers/0/image"))
	g.Expect(paths).NotTo(ContainElement("/spec/template/spec/containers/1/image"))

	job := &batchv1.Job{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"}, ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "j"}}
	job.Spec.Template.Spec.Containers = []corev1.Container{{Name: "a", Image: "nginx:1.25"}}
	jobKind := metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}
	g.Expect(m.Handle(ctx, req(t, admissionv1.Create, jobKind, job, nil)).Patches).NotTo(BeEmpty())
	g.Expect(m.Handle(ctx, req(t, admissionv1.Update, jobKind, job, job)).Patches).To(BeEmpty(), "a Job's template is immutable")
}
