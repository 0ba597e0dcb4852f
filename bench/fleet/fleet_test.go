//go:build e2e

package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/image-cloner/image-cloner/internal/testenv"
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

// TestFleet_smallFleetHoldsItsInvariants runs the benchmark on a small fleet (2 API servers,
// 4 registrations, 40 workloads and 40 more, 20 latency samples per path, one cold 1 MiB
// image) and checks what must hold whatever the timing (Check), so that `make bench-fleet`
// cannot rot. Its figures are reported, never asserted.
func TestFleet_smallFleetHoldsItsInvariants(t *testing.T) {
	const samples, cold = 20, 1
	res, err := Run(t.Context(), t, Config{
		Dir: filepath.Join(t.TempDir(), "logs"), APIServers: 2, Clusters: 4, Workloads: 40, Grow: true,
		Images: 10, Samples: samples, Cold: cold, ColdSize: 1 << 20, Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	printResult(os.Stderr, res)
	for _, err := range Check(res, samples, cold) {
		t.Error(err)
	}
	testenv.Report(t, "bench-fleet (small: %d registrations over %d API servers, %d workloads): converged in %.1fs, %d copies for %d digests, time to patch p50/p99 %.0f/%.0f ms (controller), hub RSS %s",
		res.Clusters, res.APIServers, res.Workloads, res.ConvergeS, res.Copies, res.UniqueDigests, res.PatchLatencyMs.P50, res.PatchLatencyMs.P99, mib(res.HubRSSBytes))
}
