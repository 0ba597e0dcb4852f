//go:build e2e

package reliability_test

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/image-cloner/image-cloner/e2e/env"
	"github.com/image-cloner/image-cloner/e2e/reliability"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/mirror/mirrortest"
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	// httputil.ReverseProxy (inside the fault proxies) logs every failed forward to the
	// standard logger: with registries down on purpose, that is noise.
	log.SetOutput(io.Discard)
	os.Exit(m.Run())
}

// serveProxy serves a FaultProxy in front of the registry at url on 127.0.0.1 and returns it
// with its host:port.
func serveProxy(t *testing.T, url string) (*mirrortest.FaultProxy, string) {
	t.Helper()
	p, err := mirrortest.NewFaultProxyTo(url)
	if err != nil {
		t.Fatalf("%v", err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, strings.TrimPrefix(srv.URL, "http://")
}

// TestReliability runs every fault scenario on one fleet of two members and two hub replicas
// (leader-elected), the hub reaching both registries through fault-injecting proxies.
func TestReliability(t *testing.T) {
	bin := t.TempDir()
	if err := env.Build(bin); err != nil {
		t.Fatal(err)
	}
	logs := filepath.Join(t.TempDir(), "logs")
	var backupProxy *mirrortest.FaultProxy
	started := time.Now()
	e := env.Start(t, env.Options{Bin: bin, Dir: logs, Progress: t.Logf, HubReplicas: 2,
		BackupVia: func(r *testenv.Registry) (string, error) {
			var host string
			backupProxy, host = serveProxy(t, r.URL)
			return host, nil
		}})
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range e.Processes() {
				data, _ := os.ReadFile(p.LogPath)
				if len(data) > 6144 {
					data = data[len(data)-6144:]
				}
				t.Logf("--- %s log (last 6 KiB) ---\n%s", p.Name, data)
			}
		}
	})
	upstreamProxy, upstreamHost := serveProxy(t, e.Upstream.URL)
	in := reliability.Input{Env: e, UpstreamProxy: upstreamProxy, UpstreamHost: upstreamHost, BackupProxy: backupProxy}
	fleetUp := time.Since(started)

	ctx := t.Context()
	for _, s := range []struct {
		name string
		run  func(context.Context, *testing.T, reliability.Input)
	}{
		{"RegistryFaults", reliability.RegistryFaultsScenario},
		{"AgentKill", reliability.AgentKillScenario},
		{"MemberOutage", reliability.MemberOutageScenario},
		{"HubKillMidCopy", reliability.HubKillScenario},
		{"LeaderFailover", reliability.LeaderFailoverScenario},
		{"MemberStall", reliability.MemberStallScenario},
	} {
		t.Run(s.name, func(t *testing.T) { s.run(ctx, t, in) })
	}
	testenv.Report(t, "reliability: fleet up in %s, scenarios took %s", fleetUp.Round(time.Second), (time.Since(started) - fleetUp).Round(time.Second))
}
