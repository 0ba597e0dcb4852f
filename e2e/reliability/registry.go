//go:build e2e

package reliability

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/mirror/mirrortest"
)

// registryFault is one kind of registry misbehaviour, on the upstream, the backup or both.
type registryFault struct {
	name              string
	upstream, backup  []mirrortest.Fault
	upstreamMustFault bool // the upstream faults must have been injected for the case to prove anything
}

// registryFaults returns the cases; RegistryFaultsScenario sets each upstream fault's
// Repository to the case's image.
func registryFaults() []registryFault {
	retryAfter := http.Header{"Retry-After": []string{"1"}}
	return []registryFault{
		{name: "5xx bursts", upstreamMustFault: true,
			upstream: []mirrortest.Fault{{Method: http.MethodGet, Kind: mirrortest.KindBlob, Status: http.StatusServiceUnavailable, Times: 3}},
			backup: []mirrortest.Fault{
				{Method: http.MethodPost, Kind: mirrortest.KindUpload, Status: http.StatusBadGateway, Times: 1},
				{Method: http.MethodPut, Kind: mirrortest.KindManifest, Status: http.StatusInternalServerError, Times: 2},
			}},
		{name: "429 with Retry-After", upstreamMustFault: true,
			upstream: []mirrortest.Fault{{Kind: mirrortest.KindManifest, Status: http.StatusTooManyRequests, Header: retryAfter, Times: 2}},
			backup:   []mirrortest.Fault{{Method: http.MethodPost, Kind: mirrortest.KindUpload, Status: http.StatusTooManyRequests, Header: retryAfter, Times: 1}}},
		{name: "connection resets and cut bodies", upstreamMustFault: true,
			upstream: []mirrortest.Fault{{Method: http.MethodGet, Kind: mirrortest.KindBlob, CutBody: true, CutAfter: 512, Times: 2}},
			backup:   []mirrortest.Fault{{Kind: mirrortest.KindUpload, Reset: true, Times: 2}}},
		{name: "slow responses (2 s stalls)", upstreamMustFault: true,
			upstream: []mirrortest.Fault{{Method: http.MethodGet, Kind: mirrortest.KindBlob, Delay: 2 * time.Second, Times: 2}},
			backup:   []mirrortest.Fault{{Kind: mirrortest.KindUpload, Delay: time.Second, Times: 2}}},
	}
}

// RegistryFaultsScenario: the hub copies images while the upstream and the backup registries
// answer 5xx, 429 with Retry-After, reset connections and cut bodies, stall; then while the
// backup registry is down for 10 s, then the upstream for 5 s. Every image ends Ready and its
// workload patched, and the invariants hold throughout. Reports, per fault, the faults injected (each one a request the
// hub had to retry), the requests the proxies saw, and how long the image took to be patched.
func RegistryFaultsScenario(ctx context.Context, t *testing.T, in Input) {
	e := in.Env
	w := startWatcher(ctx, t, in, 1)
	m := e.Members[0]
	ns := newNamespace(ctx, t, m.Client)
	for i, f := range registryFaults() {
		repo := "faults" + string(rune('a'+i))
		for j := range f.upstream {
			f.upstream[j].Repository = "reliability/" + repo
		}
		img := seed(t, in, repo)
		in.UpstreamProxy.Clear()
		in.BackupProxy.Clear()
		in.UpstreamProxy.ResetCounts()
		in.BackupProxy.ResetCounts()
		for _, x := range f.upstream {
			in.UpstreamProxy.Add(x)
		}
		for _, x := range f.backup {
			in.BackupProxy.Add(x)
		}
		start := time.Now()
		createDeployment(ctx, t, in, m.Client, ns, repo, img)
		patched := waitPatched(ctx, t, in, m.Client, ns, repo)
		in.UpstreamProxy.Clear()
		in.BackupProxy.Clear()
		up, back := in.UpstreamProxy.Injected(), in.BackupProxy.Injected()
		if f.upstreamMustFault && up == 0 {
			t.Errorf("%s: no upstream fault was injected: the case proved nothing", f.name)
		}
		testenv.Report(t, "reliability: registry %s: patched %s after the workload was created; %d upstream + %d backup faults injected (requests retried), %d + %d requests through the proxies",
			f.name, seconds(patched.Sub(start)), up, back, in.UpstreamProxy.Count("", mirrortest.KindAny), in.BackupProxy.Count("", mirrortest.KindAny))
	}

	// Each registry down for a while, then back with its storage.
	registryDown(ctx, t, in, ns, "backup", e.Backup, in.BackupProxy, 10*time.Second)
	registryDown(ctx, t, in, ns, "upstream", e.Upstream, in.UpstreamProxy, 5*time.Second)
	finish(ctx, t, w)
}

// registryDown stops reg (reached through proxy) for at least outage and until the hub has
// tried it, while a new workload waits for its image; then starts it again and reports how
// long the workload took to be patched after that.
func registryDown(ctx context.Context, t *testing.T, in Input, ns, which string, reg *testenv.Registry, proxy *mirrortest.FaultProxy, outage time.Duration) {
	t.Helper()
	m := in.Env.Members[0]
	name := which + "down"
	img := seed(t, in, name)
	proxy.ResetCounts()
	reg.Stop()
	down := time.Now()
	createDeployment(ctx, t, in, m.Client, ns, name, img)
	err := testenv.WaitFor(ctx, in.timeout(), func(context.Context) (bool, error) {
		return time.Since(down) >= outage && proxy.Count("", mirrortest.KindAny) > 0, nil
	})
	if err != nil {
		_ = reg.Start()
		t.Fatalf("the hub never tried the %s registry while it was down: %v", which, err)
	}
	failed := proxy.Count("", mirrortest.KindAny)
	if err := reg.Start(); err != nil {
		t.Fatalf("restarting the %s registry: %v", which, err)
	}
	up := time.Now()
	patched := waitPatched(ctx, t, in, m.Client, ns, name)
	testenv.Report(t, "reliability: %s registry down %s: patched %s after it came back; %d requests failed while it was down",
		which, seconds(up.Sub(down)), seconds(patched.Sub(up)), failed)
}
