//go:build e2e

package e2e_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/authn"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/image-cloner/image-cloner/e2e"
	"github.com/image-cloner/image-cloner/e2e/env"
	"github.com/image-cloner/image-cloner/internal/testenv"
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

// TestLocal runs every spec against local control planes with the real bin/hub and bin/agent
// processes (e2e/env, the demo's environment). The specs share one fleet; ClusterRemovalSpec
// runs last because it disconnects a member (and reconnects it).
func TestLocal(t *testing.T) {
	bin := t.TempDir()
	if err := env.Build(bin); err != nil {
		t.Fatal(err)
	}
	logs := filepath.Join(t.TempDir(), "logs")
	started := time.Now()
	e := env.Start(t, env.Options{Bin: bin, Dir: logs, Progress: t.Logf})
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range e.Processes() {
				data, _ := os.ReadFile(p.LogPath)
				t.Logf("--- %s log (last 4 KiB) ---\n%s", p.Name, lastBytes(data, 4096))
			}
		}
	})

	in := e2e.FleetInput{
		Hub:          &e2e.Kube{Name: e.Hub.Name, Config: e.Hub.Config, Client: e.Hub.Client},
		HubNamespace: env.Namespace,
		Upstream:     e2e.RegistryInfo{Host: e.Upstream.Host, Transport: e.Upstream.Transport()},
		Backup: e2e.RegistryInfo{
			Host:      e.Backup.Host,
			Auth:      &authn.Basic{Username: e.Backup.Username, Password: e.Backup.Password},
			Transport: e.Backup.Transport(),
			ManifestPuts: func(repo string) (int, error) {
				return e.Backup.CountManifestPuts(repo)
			},
		},
		BackupRegistry: e.BackupRegistry,
		Conventions:    map[string]string{},
		Logs:           map[string]string{},
		DashboardURL:   e.DashboardURL,
		MetricsURL:     e.MetricsURL,
	}
	for _, p := range e.Processes() {
		in.Logs[p.Name] = p.LogPath
	}
	for _, m := range e.Members {
		in.Members = append(in.Members, &e2e.Kube{Name: m.Name, Config: m.Config, Client: m.Client})
		in.Conventions[m.Name] = string(e.Conventions[m.Name])
	}

	fleetUp := time.Since(started)
	ctx := t.Context()
	specsStart := time.Now()
	for _, spec := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"RegistrationConventions", func(t *testing.T) { e2e.RegistrationConventionsSpec(ctx, t, in) }},
		{"FleetDedupe", func(t *testing.T) { e2e.FleetDedupeSpec(ctx, t, in) }},
		{"Patching", func(t *testing.T) { e2e.PatchingSpec(ctx, t, in) }},
		{"Admission", func(t *testing.T) { e2e.AdmissionSpec(ctx, t, in) }},
		{"MultiArch", func(t *testing.T) { e2e.MultiArchSpec(ctx, t, in) }},
		{"AnyOwnerPods", func(t *testing.T) { e2e.AnyOwnerPodsSpec(ctx, t, in) }},
		{"InjectedSidecar", func(t *testing.T) { e2e.InjectedSidecarSpec(ctx, t, in) }},
		{"PodStatusCoverage", func(t *testing.T) { e2e.PodStatusCoverageSpec(ctx, t, in) }},
		{"CredentialRotation", func(t *testing.T) { e2e.CredentialRotationSpec(ctx, t, in) }},
		{"ClusterRemoval", func(t *testing.T) { e2e.ClusterRemovalSpec(ctx, t, in) }},
		// Last: after every other spec has made the processes log and the dashboard show.
		{"CredentialLeak", func(t *testing.T) { e2e.CredentialLeakSpec(ctx, t, in) }},
	} {
		t.Run(spec.name, spec.run)
	}
	for _, p := range e.Processes() {
		select {
		case <-p.Exited():
			t.Errorf("%s exited during the specs", p.Name)
		default:
		}
	}
	testenv.Report(t, "e2e: fleet (hub + %d members, 2 registries, hub and agent processes ready) up in %s; specs took %s",
		len(in.Members), fleetUp.Round(100*time.Millisecond), time.Since(specsStart).Round(100*time.Millisecond))
}

func lastBytes(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
