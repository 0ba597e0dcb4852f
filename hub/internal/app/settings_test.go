package app_test

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/hub/internal/settings"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// TestSettings_missingBackupRegistrySaysWhatAndWhere starts the hub with a ConfigMap without
// BACKUP_REGISTRY: the hub says exactly which key to set in which ConfigMap (error, Event on
// the ConfigMap), runs nothing, and picks the fix up without a restart.
func TestSettings_missingBackupRegistrySaysWhatAndWhere(t *testing.T) {
	g := NewWithT(t)
	f := startFleet(t, fleetOptions{configData: map[string]string{"MAX_CONCURRENT_RECONCILES": "3"}})
	ctx := t.Context()
	want := "BACKUP_REGISTRY is empty: set it in ConfigMap " + f.ns + "/image-cloner-configuration"

	g.Expect(testenv.WaitFor(ctx, wait, func(context.Context) (bool, error) { return f.h.Settings.Err() != nil, nil })).To(Succeed())
	g.Expect(f.h.Settings.Err()).To(MatchError(want))
	cfg, m := f.h.Settings.Current()
	g.Expect(cfg).To(BeNil())
	g.Expect(m).To(BeNil())

	g.Expect(testenv.WaitFor(ctx, wait, func(ctx context.Context) (bool, error) {
		var list corev1.EventList
		if err := f.hub.Client.List(ctx, &list, client.InNamespace(f.ns)); err != nil {
			return false, err
		}
		for _, e := range list.Items {
			if e.InvolvedObject.Kind == "ConfigMap" && e.InvolvedObject.Name == v1alpha1.ConfigMapName &&
				e.Reason == settings.ReasonInvalidConfiguration && e.Type == corev1.EventTypeWarning &&
				strings.Contains(e.Message, want) {
				return true, nil
			}
		}
		return false, nil
	})).To(Succeed(), "no Warning Event on the ConfigMap saying %q", want)

	var cm corev1.ConfigMap
	g.Expect(f.hub.Client.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: v1alpha1.ConfigMapName}, &cm)).To(Succeed())
	cm.Data["BACKUP_REGISTRY"] = f.backup.Host + "/fixed"
	g.Expect(f.hub.Client.Update(ctx, &cm)).To(Succeed())
	g.Expect(testenv.WaitFor(ctx, wait, func(context.Context) (bool, error) {
		cfg, _ := f.h.Settings.Current()
		return cfg != nil, nil
	})).To(Succeed())
	cfg, _ = f.h.Settings.Current()
	g.Expect(cfg.BackupRegistry).To(Equal(f.backup.Host + "/fixed"))
	g.Expect(cfg.MaxConcurrentReconciles).To(Equal(3))
	g.Expect(f.h.Settings.Err()).NotTo(HaveOccurred())
}
