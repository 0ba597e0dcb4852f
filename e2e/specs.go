package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// FleetDedupeSpec: one image used by a Deployment in every member is copied once for the whole
// fleet. Each member gets a Ready ClonedImage with the same backup and the source's digest, the
// backup registry serves that digest, and it received exactly one manifest PUT for the backup
// repository: subtest "one manifest PUT for the fleet", skipped (and reported so) where the
// registry's requests cannot be counted.
func FleetDedupeSpec(ctx context.Context, t *testing.T, in FleetInput) {
	g := gomega.NewWithT(t)
	ref, digest := pushImage(t, in, "dedupe")
	for _, m := range in.Members {
		ns := newNamespace(ctx, t, m)
		g.Expect(m.Client.Create(ctx, deployment(ns, "app", ref))).To(gomega.Succeed())
	}
	var backup string
	for _, m := range in.Members {
		ci := waitReady(ctx, t, in, m, ref)
		g.Expect(ci.Status.Digest).To(gomega.Equal(digest.String()), "the backup keeps the source's digest")
		g.Expect(ci.Status.Backup).To(gomega.HavePrefix(in.BackupRegistry+"/"), "the backup is under BACKUP_REGISTRY")
		if backup == "" {
			backup = ci.Status.Backup
		}
		g.Expect(ci.Status.Backup).To(gomega.Equal(backup), "every member points at the same copy")
	}
	bref, err := name.ParseReference(backup)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	desc, err := remote.Head(bref.Context().Digest(digest.String()), in.Backup.remoteOptions()...)
	g.Expect(err).NotTo(gomega.HaveOccurred(), "the backup registry serves %s@%s", bref.Context(), digest)
	g.Expect(desc.Digest).To(gomega.Equal(digest))
	// A subtest of its own, so that where the registry's requests cannot be counted the check
	// is reported as skipped, not as passed.
	t.Run("one manifest PUT for the fleet", func(t *testing.T) {
		if in.Backup.ManifestPuts == nil {
			t.Skip("the backup registry's requests cannot be counted against these clusters (no access log): not checked")
		}
		puts, err := in.Backup.ManifestPuts(bref.Context().RepositoryStr())
		g := gomega.NewWithT(t)
		g.Expect(err).NotTo(gomega.HaveOccurred())
		g.Expect(puts).To(gomega.Equal(1), "one manifest PUT for %d clusters", len(in.Members))
	})
}

// PatchingSpec: a Deployment and a DaemonSet in every member are pointed at the backup once it
// is Ready (pinned by digest unless PIN_DIGEST=false), keep their original image in
// image-cloner.io/original-images, and pull with image-cloner-pull, which the agent has put
// in their namespace.
func PatchingSpec(ctx context.Context, t *testing.T, in FleetInput) {
	g := gomega.NewWithT(t)
	ref, digest := pushImage(t, in, "patch")
	nss := make([]string, len(in.Members))
	for i, m := range in.Members {
		nss[i] = newNamespace(ctx, t, m)
		g.Expect(m.Client.Create(ctx, deployment(nss[i], "web", ref))).To(gomega.Succeed())
		g.Expect(m.Client.Create(ctx, daemonSet(nss[i], "node", ref))).To(gomega.Succeed())
	}
	for i, m := range in.Members {
		ci := waitReady(ctx, t, in, m, ref)
		want := gomega.Or(gomega.Equal(ci.Status.Backup+"@"+digest.String()), gomega.Equal(ci.Status.Backup))
		for _, obj := range []client.Object{&appsv1.Deployment{}, &appsv1.DaemonSet{}} {
			key := client.ObjectKey{Namespace: nss[i], Name: "web"}
			if _, ok := obj.(*appsv1.DaemonSet); ok {
				key.Name = "node"
			}
			g.Eventually(func(g gomega.Gomega) {
				g.Expect(m.Client.Get(ctx, key, obj)).To(gomega.Succeed())
				spec, err := workload.PodSpec(obj)
				g.Expect(err).NotTo(gomega.HaveOccurred())
				g.Expect(spec.Containers[0].Image).To(want, "%T %s in %s points at the backup", obj, key, m.Name)
				originals, err := workload.Originals(obj)
				g.Expect(err).NotTo(gomega.HaveOccurred())
				g.Expect(originals).To(gomega.ContainElement(ref), "the original image is kept for restore")
				g.Expect(spec.ImagePullSecrets).To(gomega.ContainElement(corev1.LocalObjectReference{Name: v1alpha1.NamespacePullSecretName}))
			}).WithTimeout(in.timeout()).WithPolling(poll).Should(gomega.Succeed())
		}
		g.Eventually(func(g gomega.Gomega) {
			var s corev1.Secret
			g.Expect(m.Client.Get(ctx, client.ObjectKey{Namespace: nss[i], Name: v1alpha1.NamespacePullSecretName}, &s)).To(gomega.Succeed())
			g.Expect(s.Type).To(gomega.Equal(corev1.SecretTypeDockerConfigJson))
		}).WithTimeout(in.timeout()).WithPolling(poll).Should(gomega.Succeed(), "the agent provides the pull Secret in %s/%s", m.Name, nss[i])
	}
}

// warnings collects the API server's warnings (admission warnings among them).
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs...)
}

// AdmissionSpec: the agent's webhooks are live in every member. In the default warn mode a
// Deployment whose image has no backup is admitted with a warning naming the image; once the
// backup is Ready, a new Deployment with that image is rewritten at admission: the object the
// API server returns from the create already points at the backup.
func AdmissionSpec(ctx context.Context, t *testing.T, in FleetInput) {
	g := gomega.NewWithT(t)
	ref, _ := pushImage(t, in, "admit")
	for _, m := range in.Members {
		ns := newNamespace(ctx, t, m)
		w := &warnings{}
		cfg := rest.CopyConfig(m.Config)
		cfg.WarningHandler = w
		c, err := client.New(cfg, client.Options{Scheme: m.Client.Scheme()})
		g.Expect(err).NotTo(gomega.HaveOccurred())
		// failurePolicy Ignore admits without a word while the agent is not serving yet (it
		// answers once its cache has synced): retry with a new Deployment until it warns.
		n := 0
		g.Eventually(func(g gomega.Gomega) {
			n++
			g.Expect(c.Create(ctx, deployment(ns, fmt.Sprintf("first-%d", n), ref))).To(gomega.Succeed(), "warn mode admits an image without a backup")
			g.Expect(w.all()).To(gomega.ContainElement(gomega.ContainSubstring(ref)), "the validating webhook warns about %s in %s", ref, m.Name)
		}).WithTimeout(in.timeout()).WithPolling(time.Second).Should(gomega.Succeed())

		ci := waitReady(ctx, t, in, m, ref)
		late := deployment(ns, "late", ref)
		g.Expect(m.Client.Create(ctx, late)).To(gomega.Succeed())
		g.Expect(late.Spec.Template.Spec.Containers[0].Image).To(gomega.HavePrefix(ci.Status.Backup),
			"the mutating webhook rewrote the Deployment at admission in %s", m.Name)
	}
}

// RegistrationConventionsSpec: each member is registered by a Secret in the hub's namespace in
// its convention (image-cloner's label, or Cluster API's <name>-kubeconfig), the hub serves
// both (a workload's image gets a Ready ClonedImage in each), and a registration made by
// `hub register` holds a least-privilege identity: it can read workloads but not Secrets.
func RegistrationConventionsSpec(ctx context.Context, t *testing.T, in FleetInput) {
	g := gomega.NewWithT(t)
	for _, m := range in.Members {
		conv := in.Conventions[m.Name]
		s := registrationSecret(ctx, t, in, m.Name)
		got, ok := registration.Matches(s)
		g.Expect(ok).To(gomega.BeTrue())
		g.Expect(string(got)).To(gomega.Equal(conv), "%s is registered in the %s convention", m.Name, conv)
		if registration.Convention(conv) != registration.Label {
			continue
		}
		reg, err := registration.Parse(s)
		g.Expect(err).NotTo(gomega.HaveOccurred())
		c, err := client.New(reg.Config, client.Options{Scheme: m.Client.Scheme()})
		g.Expect(err).NotTo(gomega.HaveOccurred())
		g.Expect(c.List(ctx, &appsv1.DeploymentList{})).To(gomega.Succeed(), "the hub's identity in %s reads workloads", m.Name)
		err = c.List(ctx, &corev1.SecretList{}, client.InNamespace("kube-system"))
		g.Expect(apierrors.IsForbidden(err)).To(gomega.BeTrue(), "the hub's identity in %s must not read Secrets, got %v", m.Name, err)
	}
	ref, _ := pushImage(t, in, "registered")
	for _, m := range in.Members {
		g.Expect(m.Client.Create(ctx, deployment(newNamespace(ctx, t, m), "app", ref))).To(gomega.Succeed())
	}
	for _, m := range in.Members {
		waitReady(ctx, t, in, m, ref)
	}
}

// registrationSecret returns the hub's registration Secret of member name, in either convention.
func registrationSecret(ctx context.Context, t testing.TB, in FleetInput, member string) *corev1.Secret {
	t.Helper()
	var list corev1.SecretList
	gomega.NewWithT(t).Expect(in.Hub.Client.List(ctx, &list, client.InNamespace(in.HubNamespace))).To(gomega.Succeed())
	for i := range list.Items {
		s := &list.Items[i]
		conv, ok := registration.Matches(s)
		switch {
		case !ok:
		case conv == registration.ClusterAPI && s.Name == member+"-kubeconfig",
			conv == registration.Label && s.Name == member:
			return s
		}
	}
	t.Fatalf("no registration Secret for %s in the hub's namespace %s", member, in.HubNamespace)
	return nil
}

// ClusterRemovalSpec: deleting a member's registration Secret disconnects it: a new image used
// in that member and in another is backed up for the other, and is not Ready in the removed
// member. Recreating the Secret reconnects it, and the image becomes Ready there too (which
// also shows the member was left out because it was removed, not because it was slow). It uses
// the last member and leaves it registered again.
func ClusterRemovalSpec(ctx context.Context, t *testing.T, in FleetInput) {
	g := gomega.NewWithT(t)
	g.Expect(len(in.Members)).To(gomega.BeNumerically(">=", 2), "ClusterRemovalSpec needs two members")
	kept, removed := in.Members[0], in.Members[len(in.Members)-1]
	s := registrationSecret(ctx, t, in, removed.Name)
	g.Expect(in.Hub.Client.Delete(ctx, s)).To(gomega.Succeed())

	ref, _ := pushImage(t, in, "removal")
	for _, m := range []*Kube{kept, removed} {
		g.Expect(m.Client.Create(ctx, deployment(newNamespace(ctx, t, m), "app", ref))).To(gomega.Succeed())
	}
	waitReady(ctx, t, in, kept, ref)
	ci, err := clonedImage(ctx, removed, ref)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	if ci != nil {
		g.Expect(ci.IsReady()).To(gomega.BeFalse(), "the hub wrote a Ready ClonedImage into %s after its Secret was deleted", removed.Name)
	}

	again := s.DeepCopy()
	again.ResourceVersion, again.UID, again.CreationTimestamp = "", "", metav1.Time{}
	g.Expect(in.Hub.Client.Create(ctx, again)).To(gomega.Succeed())
	waitReady(ctx, t, in, removed, ref)
}

// CredentialRotationSpec: the hub follows changes to its credentials without a restart. With
// a wrong password in the push Secret a new image's backup fails (phase Failed, a reason on the
// Ready condition); with the right one restored it becomes Ready. A new pull Secret reaches
// every member's namespaces (the agent's image-cloner-pull copies).
func CredentialRotationSpec(ctx context.Context, t *testing.T, in FleetInput) {
	g := gomega.NewWithT(t)
	m := in.Members[0]
	var push corev1.Secret
	key := client.ObjectKey{Namespace: in.HubNamespace, Name: config.DefaultPushSecretName}
	g.Expect(in.Hub.Client.Get(ctx, key, &push)).To(gomega.Succeed())
	good := push.Data[corev1.DockerConfigJsonKey]
	bad, err := json.Marshal(map[string]any{"auths": map[string]any{in.Backup.Host: map[string]string{"username": "nobody", "password": "wrong"}}})
	g.Expect(err).NotTo(gomega.HaveOccurred())
	setSecret(ctx, t, in.Hub, key, bad)
	restored := false
	defer func() {
		if !restored {
			setSecret(ctx, t, in.Hub, key, good)
		}
	}()

	ref, _ := pushImage(t, in, "rotation")
	ns := newNamespace(ctx, t, m)
	g.Expect(m.Client.Create(ctx, deployment(ns, "app", ref))).To(gomega.Succeed())
	g.Eventually(func(g gomega.Gomega) {
		ci, err := clonedImage(ctx, m, ref)
		g.Expect(err).NotTo(gomega.HaveOccurred())
		g.Expect(ci).NotTo(gomega.BeNil())
		g.Expect(ci.Status.Phase).To(gomega.Equal(v1alpha1.PhaseFailed), "with a wrong push password: %+v", ci.Status)
	}).WithTimeout(in.timeout()).WithPolling(poll).Should(gomega.Succeed())

	setSecret(ctx, t, in.Hub, key, good)
	restored = true
	waitReady(ctx, t, in, m, ref)

	// Pull credentials: a new Secret content reaches the members' namespaces.
	pullKey := client.ObjectKey{Namespace: in.HubNamespace, Name: v1alpha1.PullSecretName}
	var pull corev1.Secret
	g.Expect(in.Hub.Client.Get(ctx, pullKey, &pull)).To(gomega.Succeed())
	oldPull := pull.Data[corev1.DockerConfigJsonKey]
	var cfg map[string]map[string]any
	g.Expect(json.Unmarshal(oldPull, &cfg)).To(gomega.Succeed())
	marker := "rotated-" + randomSuffix() + ".example.com"
	cfg["auths"][marker] = map[string]string{"username": "u", "password": "p"}
	newPull, err := json.Marshal(cfg)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	setSecret(ctx, t, in.Hub, pullKey, newPull)
	defer setSecret(ctx, t, in.Hub, pullKey, oldPull)
	for _, m := range in.Members {
		ns := newNamespace(ctx, t, m)
		g.Eventually(func(g gomega.Gomega) {
			var s corev1.Secret
			g.Expect(m.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: v1alpha1.NamespacePullSecretName}, &s)).To(gomega.Succeed())
			g.Expect(string(s.Data[corev1.DockerConfigJsonKey])).To(gomega.ContainSubstring(marker))
		}).WithTimeout(in.timeout()).WithPolling(poll).Should(gomega.Succeed(), "the rotated pull Secret reaches %s", m.Name)
	}
}

func setSecret(ctx context.Context, t testing.TB, k *Kube, key client.ObjectKey, data []byte) {
	t.Helper()
	gomega.NewWithT(t).Eventually(func() error {
		var s corev1.Secret
		if err := k.Client.Get(ctx, key, &s); err != nil {
			return err
		}
		s.Data = map[string][]byte{corev1.DockerConfigJsonKey: data}
		return k.Client.Update(ctx, &s)
	}).WithTimeout(30*time.Second).WithPolling(poll).Should(gomega.Succeed(), "updating Secret %s", key)
}

// MultiArchSpec: a multi-arch index is backed up whole: the backup has the index's digest and
// every platform's manifest, so nodes of any architecture pull the same image from it.
func MultiArchSpec(ctx context.Context, t *testing.T, in FleetInput) {
	g := gomega.NewWithT(t)
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(2048, 1)
		g.Expect(err).NotTo(gomega.HaveOccurred())
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	idx := mutate.AppendManifests(empty.Index, adds...)
	ref, err := name.ParseReference(fmt.Sprintf("%s/e2e/multiarch-%s:v1", in.Upstream.Host, randomSuffix()))
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(remote.WriteIndex(ref, idx, in.Upstream.remoteOptions()...)).To(gomega.Succeed())
	digest, err := idx.Digest()
	g.Expect(err).NotTo(gomega.HaveOccurred())

	m := in.Members[0]
	g.Expect(m.Client.Create(ctx, deployment(newNamespace(ctx, t, m), "app", ref.String()))).To(gomega.Succeed())
	ci := waitReady(ctx, t, in, m, ref.String())
	g.Expect(ci.Status.Digest).To(gomega.Equal(digest.String()), "the backup is the index, not one platform's image")
	bref, err := name.ParseReference(ci.Status.Backup)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	backup, err := remote.Index(bref.Context().Digest(digest.String()), in.Backup.remoteOptions()...)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	manifest, err := backup.IndexManifest()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	var platforms []string
	for _, d := range manifest.Manifests {
		platforms = append(platforms, d.Platform.String())
		_, err := remote.Head(bref.Context().Digest(d.Digest.String()), in.Backup.remoteOptions()...)
		g.Expect(err).NotTo(gomega.HaveOccurred(), "the backup registry has the %s manifest", d.Platform)
	}
	g.Expect(platforms).To(gomega.ConsistOf("linux/amd64", "linux/arm64"))
}
