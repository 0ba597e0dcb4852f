package backups

import (
	"context"
	"errors"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/imageref"
)

const digest = "sha256:3333333333333333333333333333333333333333333333333333333333333333"

func cloned(image string, phase apiv1.Phase, backup string) *apiv1.ClonedImage {
	ref, _ := imageref.Parse(image)
	ci := &apiv1.ClonedImage{ObjectMeta: metav1.ObjectMeta{Name: imageref.ObjectName(ref)}, Spec: apiv1.ClonedImageSpec{Source: ref.String()}}
	ci.Status.Phase = phase
	if phase == apiv1.PhaseReady {
		ci.Status.Backup, ci.Status.Digest = backup, digest
	}
	return ci
}

func lookup(t *testing.T, objs ...client.Object) *Lookup {
	s := runtime.NewScheme()
	if err := apiv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := corev1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).
		WithIndex(&apiv1.ClonedImage{}, BackupIndex, func(o client.Object) []string { return backupKeys(o.(*apiv1.ClonedImage)) }).
		Build()
	return &Lookup{Reader: c}
}

func TestLookup_decidesFromTheClonedImage(t *testing.T) {
	g := NewWithT(t)
	l := lookup(t,
		cloned("nginx:1.25", apiv1.PhaseReady, "backup.example.com/acme/docker.io_library_nginx:1.25"),
		cloned("redis:7", apiv1.PhaseCloning, ""),
	)
	ctx := context.Background()
	s := Defaults(apiv1.DefaultNamespace)

	d, err := l.Decide(ctx, s, "index.docker.io/library/nginx:1.25")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(d.Target).To(Equal("backup.example.com/acme/docker.io_library_nginx:1.25@" + digest))
	s.PinDigest = false
	d, _ = l.Decide(ctx, s, "nginx:1.25")
	g.Expect(d.Target).To(Equal("backup.example.com/acme/docker.io_library_nginx:1.25"))

	d, _ = l.Decide(ctx, s, "redis:7")
	g.Expect(d.BackedUp()).To(BeFalse(), "Cloning is not Ready")
	g.Expect(d.Cloned).NotTo(BeNil())

	d, _ = l.Decide(ctx, s, "memcached:1")
	g.Expect(d.BackedUp()).To(BeFalse())
	g.Expect(d.Cloned).To(BeNil())

	// A backup, by tag or pinned, is recognised as one from the ClonedImage alone.
	for _, img := range []string{"backup.example.com/acme/docker.io_library_nginx:1.25", "backup.example.com/acme/docker.io_library_nginx:1.25@" + digest} {
		d, _ = l.Decide(ctx, s, img)
		g.Expect(d.IsBackup).To(BeTrue(), img)
	}
	_, err = l.Decide(ctx, s, "Not/A:Ref!")
	g.Expect(errors.Is(err, imageref.ErrInvalidReference)).To(BeTrue())
}

func TestLookup_ignoresAClonedImageForAnotherSource(t *testing.T) {
	g := NewWithT(t)
	impostor := cloned("nginx:1.25", apiv1.PhaseReady, "backup.example.com/acme/evil:1")
	impostor.Spec.Source = "docker.io/library/evil:1"
	d, err := lookup(t, impostor).Decide(context.Background(), Defaults("x"), "nginx:1.25")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(d.Target).To(BeEmpty())
}

func TestLookup_recognisesTheBackupRegistry(t *testing.T) {
	g := NewWithT(t)
	s := Defaults("x")
	n, err := imageref.NewNamer("backup.example.com/acme", imageref.Flat)
	g.Expect(err).NotTo(HaveOccurred())
	s.Namer = n
	d, err := lookup(t).Decide(context.Background(), s, "backup.example.com/acme/anything:1")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(d.IsBackup).To(BeTrue())
	d, _ = lookup(t).Decide(context.Background(), s, "backup.example.com/acmecorp/anything:1")
	g.Expect(d.IsBackup).To(BeFalse())
}

func TestPolicy_ignoresSystemAndConfiguredNamespaces(t *testing.T) {
	g := NewWithT(t)
	s := &Policy{Namespace: "agent", IgnoredNamespaces: []string{"legacy"}}
	for _, ns := range []string{"agent", "kube-system", apiv1.DefaultNamespace, "legacy"} {
		g.Expect(s.Ignored(ns)).To(BeTrue(), ns)
	}
	g.Expect(s.Ignored("apps")).To(BeFalse())
}

func TestFromConfigMap_defaultsWithoutOneAndFailsOnABadOne(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	s, err := FromConfigMap(lookup(t).Reader, "agent")(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.WebhookMode).To(Equal(Warn))
	g.Expect(s.RewriteMode).To(Equal(RewriteWorkload))
	g.Expect(s.PinDigest).To(BeTrue())

	cm := func(data map[string]string) client.Object {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "agent", Name: apiv1.ConfigMapName}, Data: data}
	}
	s, err = FromConfigMap(lookup(t, cm(map[string]string{
		"BACKUP_REGISTRY": "quay.io/acme", "WEBHOOK_MODE": "enforce", "REWRITE_MODE": "pod", "PIN_DIGEST": "false",
	})).Reader, "agent")(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Enforcing()).To(BeTrue())
	g.Expect(s.PodMode()).To(BeTrue())
	g.Expect(s.PinDigest).To(BeFalse())
	g.Expect(s.Namer).NotTo(BeNil())

	s, err = FromConfigMap(lookup(t, cm(map[string]string{"BACKUP_REGISTRY": "quay.io/acme", "REWRITE_MODE": "auto"})).Reader, "agent")(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.AutoMode()).To(BeTrue())
	g.Expect(s.PodMode()).To(BeFalse(), "auto patches workloads")

	_, err = FromConfigMap(lookup(t, cm(map[string]string{"BACKUP_REGISTRY": "quay.io/acme", "WEBHOOK_MODE": "block"})).Reader, "agent")(ctx)
	g.Expect(err).To(MatchError(ContainSubstring("WEBHOOK_MODE")))
	_, err = FromConfigMap(lookup(t, cm(map[string]string{"BACKUP_REGISTRY": "quay.io/acme", "REWRITE_MODE": "automatic"})).Reader, "agent")(ctx)
	g.Expect(err).To(MatchError(ContainSubstring(`REWRITE_MODE is "automatic"`)))
}
