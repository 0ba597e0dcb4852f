package settings_test

import (
	"context"
	"testing"

	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/hub/internal/settings"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/mirror"
)

// secretPassword is in the push Secret of some steps; no error may quote it.
const secretPassword = "s3cr3t-never-logged"

// TestReconciler_stepsThroughConfigurationChanges drives one Reconciler through the life of a
// hub's configuration on a real API server, one step after the other: what is in force after
// each step, whether the copy engine was rebuilt, and whether the hub was told to resync.
func TestReconciler_stepsThroughConfigurationChanges(t *testing.T) {
	c := testenv.StartCluster(t, testenv.ClusterOptions{}).Client
	ctx := t.Context()
	const ns = "image-cloner-system"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}

	changes := 0
	r := &settings.Reconciler{
		Client: c, Namespace: ns, PushSecret: config.DefaultPushSecretName, Log: testr.New(t),
		OnChange: func(context.Context) { changes++ },
	}

	setConfig := func(data map[string]string) func(*WithT) {
		return func(g *WithT) {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: v1alpha1.ConfigMapName}}
			err := c.Get(ctx, client.ObjectKeyFromObject(cm), cm)
			if client.IgnoreNotFound(err) != nil {
				g.Expect(err).NotTo(HaveOccurred())
			}
			cm.Data = data
			if err != nil {
				g.Expect(c.Create(ctx, cm)).To(Succeed())
			} else {
				g.Expect(c.Update(ctx, cm)).To(Succeed())
			}
		}
	}
	setPush := func(dockerConfig string) func(*WithT) {
		return func(g *WithT) {
			s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: config.DefaultPushSecretName}}
			_ = c.Delete(ctx, s)
			s.Type = corev1.SecretTypeDockerConfigJson
			s.Data = map[string][]byte{corev1.DockerConfigJsonKey: []byte(dockerConfig)}
			g.Expect(c.Create(ctx, s)).To(Succeed())
		}
	}
	const auth = `{"auths":{"backup.example:5000":{"username":"u","password":"` + secretPassword + `"}}}`
	const otherAuth = `{"auths":{"backup.example:5000":{"username":"v","password":"` + secretPassword + `"}}}`
	base := map[string]string{config.KeyBackupRegistry: "backup.example:5000/backups"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		m[k] = v
		return m
	}

	steps := []struct {
		name   string
		change func(*WithT)
		// wantErr is a substring of Err(), "" when the configuration as read is valid.
		wantErr string
		// wantBackup is BACKUP_REGISTRY of the configuration in force, "" for none.
		wantBackup string
		rebuilt    bool // the Mirror in force is not the one of the previous step
		resynced   bool // OnChange was called
	}{
		{name: "no ConfigMap: says what to create", wantErr: "ConfigMap image-cloner-system/image-cloner-configuration does not exist: create it with at least BACKUP_REGISTRY"},
		{name: "a valid ConfigMap is put in force", change: setConfig(base), wantBackup: "backup.example:5000/backups", rebuilt: true, resynced: true},
		{name: "reading it again changes nothing", change: func(*WithT) {}, wantBackup: "backup.example:5000/backups"},
		{name: "a new interval resyncs with the same Mirror", change: setConfig(with(config.KeyTagRefreshInterval, "7m")), wantBackup: "backup.example:5000/backups", resynced: true},
		{name: "a new copy bound rebuilds the Mirror", change: setConfig(with(config.KeyMaxConcurrentReconciles, "2")), wantBackup: "backup.example:5000/backups", rebuilt: true, resynced: true},
		{name: "push credentials rebuild the Mirror", change: setPush(auth), wantBackup: "backup.example:5000/backups", rebuilt: true, resynced: true},
		{name: "other push credentials rebuild it again", change: setPush(otherAuth), wantBackup: "backup.example:5000/backups", rebuilt: true, resynced: true},
		{name: "an invalid value keeps the last valid configuration", change: setConfig(with(config.KeyMaxConcurrentReconciles, "many")), wantErr: "MAX_CONCURRENT_RECONCILES", wantBackup: "backup.example:5000/backups"},
		{name: "a malformed push Secret is refused without quoting it", change: func(g *WithT) {
			setConfig(with(config.KeyMaxConcurrentReconciles, "2"))(g)
			setPush(`{"auths":{"backup.example:5000":{"auth":"%%` + secretPassword + `"}}}`)(g)
		}, wantErr: "Secret image-cloner-system/image-cloner-push-credentials", wantBackup: "backup.example:5000/backups"},
		{name: "the fix is picked up", change: setPush(auth), wantBackup: "backup.example:5000/backups", rebuilt: true, resynced: true},
		{name: "a different backup registry resyncs", change: setConfig(map[string]string{config.KeyBackupRegistry: "other.example/b", config.KeyMaxConcurrentReconciles: "2"}), wantBackup: "other.example/b", resynced: true},
	}

	var lastMirror *mirror.Mirror
	for _, s := range steps {
		g := NewWithT(t)
		if s.change != nil {
			s.change(g)
		}
		before := changes
		_, err := r.Reconcile(ctx, ctrl.Request{})
		g.Expect(err).NotTo(HaveOccurred(), s.name)

		if s.wantErr == "" {
			g.Expect(r.Err()).NotTo(HaveOccurred(), s.name)
		} else {
			g.Expect(r.Err()).To(MatchError(ContainSubstring(s.wantErr)), s.name)
			g.Expect(r.Err().Error()).NotTo(ContainSubstring(secretPassword), s.name)
		}
		cfg, m := r.Current()
		if s.wantBackup == "" {
			g.Expect(cfg).To(BeNil(), s.name)
			g.Expect(m).To(BeNil(), s.name)
		} else {
			g.Expect(cfg).NotTo(BeNil(), s.name)
			g.Expect(cfg.BackupRegistry).To(Equal(s.wantBackup), s.name)
			g.Expect(m).NotTo(BeNil(), s.name)
		}
		g.Expect(m != lastMirror).To(Equal(s.rebuilt), "%s: Mirror rebuilt", s.name)
		g.Expect(changes > before).To(Equal(s.resynced), "%s: OnChange called", s.name)
		if t.Failed() {
			t.FailNow()
		}
		lastMirror = m
	}
}
