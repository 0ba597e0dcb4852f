package settings_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/hub/internal/settings"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
)

// TestSettings_copyReferrersReachesTheCopyEngine runs the settings reconciler against a real API
// server and real registries: the Mirror it builds copies an image's cosign signature into the
// backup, and once COPY_REFERRERS is false the Mirror is rebuilt and copies the image alone
// (the control, which shows the first check can fail). An invalid value is refused and the
// Mirror in force stays.
func TestSettings_copyReferrersReachesTheCopyEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and registries; skipped with -short")
	}
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster := testenv.StartCluster(t, testenv.ClusterOptions{Name: "hub"})
	src := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "upstream"})
	backup := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "backup"})
	ns := v1alpha1.DefaultNamespace
	g.Expect(cluster.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: v1alpha1.ConfigMapName},
		Data: map[string]string{config.KeyBackupRegistry: backup.Host + "/acme"}}
	g.Expect(cluster.Client.Create(ctx, cm)).To(Succeed())
	r := &settings.Reconciler{Client: cluster.Client, Namespace: ns, PushSecret: config.DefaultPushSecretName, Log: logr.Discard()}
	reconcile := func() {
		t.Helper()
		_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(cm)})
		g.Expect(err).NotTo(HaveOccurred())
	}
	// copySigned pushes a signed image upstream, copies it with the Mirror in force, and says
	// whether the backup holds its signature.
	copySigned := func(app string) bool {
		t.Helper()
		cfg, m := r.Current()
		g.Expect(m).NotTo(BeNil(), "%v", r.Err())
		img, err := random.Image(512, 1)
		g.Expect(err).NotTo(HaveOccurred())
		d, err := img.Digest()
		g.Expect(err).NotTo(HaveOccurred())
		from, err := name.ParseReference(src.Host + "/library/" + app + ":1.0")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(remote.Write(from, img)).To(Succeed())
		sigTag := fmt.Sprintf("%s-%s.sig", d.Algorithm, d.Hex)
		sig, err := random.Image(128, 1)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(remote.Write(from.Context().Tag(sigTag), sig)).To(Succeed())
		to, err := name.ParseReference(cfg.BackupRegistry + "/" + app + ":1.0")
		g.Expect(err).NotTo(HaveOccurred())
		_, err = m.Copy(ctx, from, to)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = remote.Head(to.Context().Tag(sigTag))
		return err == nil
	}

	reconcile()
	cfg, first := r.Current()
	g.Expect(cfg.CopyReferrers).To(BeTrue(), "the default")
	g.Expect(copySigned("one")).To(BeTrue(), "the signature is copied with the image")

	cm.Data[config.KeyCopyReferrers] = "false"
	g.Expect(cluster.Client.Update(ctx, cm)).To(Succeed())
	reconcile()
	cfg, second := r.Current()
	g.Expect(cfg.CopyReferrers).To(BeFalse())
	g.Expect(second).NotTo(BeIdenticalTo(first), "the Mirror is rebuilt")
	g.Expect(copySigned("two")).To(BeFalse(), "without referrers the image goes alone")

	cm.Data[config.KeyCopyReferrers] = "maybe"
	g.Expect(cluster.Client.Update(ctx, cm)).To(Succeed())
	reconcile()
	g.Expect(r.Err()).To(MatchError(ContainSubstring(`COPY_REFERRERS is "maybe"`)))
	_, third := r.Current()
	g.Expect(third).To(BeIdenticalTo(second), "the last valid configuration stays in force")
}
