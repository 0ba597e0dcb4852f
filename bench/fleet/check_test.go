package main

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// good is a result that passes Check with 3 samples and 1 cold image.
func good() *Result {
	lat := Percentiles{P50: 10, P95: 20, P99: 30, Max: 40, N: 3}
	p := func(label string, regs int) Point {
		return Point{Label: label, Registrations: regs, RSSBytes: 1, HeapLiveBytes: 1, HeapInuseBytes: 1, Goroutines: 1}
	}
	return &Result{
		Clusters: 4, APIServers: 2, Workloads: 40, UniqueDigests: 9, Copies: 9, ConvergeS: 3, HubRSSBytes: 1 << 20,
		CachedWorkloads: 80, ExpectedCachedWorkloads: 80, PatchLatencyMs: lat, AdmissionLatencyMs: lat,
		PatchedBy: map[string]int{"controller": 3}, CopyResults: map[string]int{"copied": 9},
		Cold:    []ColdSample{{CopyMs: 100, PatchedMs: 150}},
		Memory:  []Point{p("a", 2), p("b", 4), p("c", 4)},
		Targets: []Target{{Name: "x"}},
	}
}

func TestCheck_catchesEveryBrokenInvariant(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Check(good(), 3, 1)).To(BeEmpty())
	for _, tc := range []struct {
		name    string
		breakIt func(*Result)
		want    string
	}{
		{"a copy per cluster", func(r *Result) { r.Copies = 18 }, "18 copies for 9 unique digests"},
		{"a missing field", func(r *Result) { r.ConvergeS = 0 }, "converge_s is 0"},
		{"no RSS", func(r *Result) { r.HubRSSBytes = 0 }, "hub_rss_bytes is 0"},
		{"cache gauge off", func(r *Result) { r.CachedWorkloads = 40 }, "40 cached workloads, want 80"},
		{"percentiles out of order", func(r *Result) { r.PatchLatencyMs.P95 = 5 }, "p50 <= p95"},
		{"zero latency", func(r *Result) { r.AdmissionLatencyMs = Percentiles{N: 3} }, "admission_latency_ms: want 0 < p50"},
		{"too few samples", func(r *Result) { r.PatchLatencyMs.N = 2 }, "2 samples, want 3"},
		{"webhook patched the controller samples", func(r *Result) { r.PatchedBy = map[string]int{"admission": 3} }, "only 0 of 3"},
		{"copy longer than patch", func(r *Result) { r.Cold[0].CopyMs = 200 }, "copy <= create-to-patched"},
		{"no cold sample", func(r *Result) { r.Cold = nil }, "0 cold samples"},
		{"empty memory point", func(r *Result) { r.Memory[2].Goroutines = 0 }, `memory point "c"`},
		{"registrations not counted", func(r *Result) { r.Memory[1].Registrations = 2 }, "want 2 and 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			r := good()
			tc.breakIt(r)
			errs := Check(r, 3, 1)
			var msgs []string
			for _, e := range errs {
				msgs = append(msgs, e.Error())
			}
			g.Expect(strings.Join(msgs, "\n")).To(ContainSubstring(tc.want))
		})
	}
}

func TestParseMetrics_readsLabelsAndSums(t *testing.T) {
	g := NewWithT(t)
	ss, err := parseMetrics(strings.NewReader(`# HELP x y
image_cloner_cached_objects{cluster="a",kind="Deployment"} 3
image_cloner_cached_objects{cluster="b",kind="DaemonSet"} 4
image_cloner_cached_objects{cluster="b",kind="ClonedImage"} 5
image_cloner_copies_total{result="copied"} 7
go_goroutines 42
`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ss.cachedWorkloads()).To(Equal(7))
	g.Expect(ss.sum("image_cloner_cached_objects")).To(Equal(12.0))
	g.Expect(ss.sum("image_cloner_copies_total", "result", "copied")).To(Equal(7.0))
	g.Expect(ss.sum("go_goroutines")).To(Equal(42.0))
	g.Expect(ss.has("nope")).To(BeFalse())
	_, err = parseMetrics(strings.NewReader("broken{a=\"b\" 1\n"))
	g.Expect(err).To(HaveOccurred())
}

func TestPercentiles_nearestRank(t *testing.T) {
	g := NewWithT(t)
	var v []float64
	for i := 1; i <= 200; i++ {
		v = append(v, float64(i))
	}
	g.Expect(percentiles(v)).To(Equal(Percentiles{P50: 100, P95: 190, P99: 198, Max: 200, N: 200}))
	g.Expect(percentiles([]float64{5})).To(Equal(Percentiles{P50: 5, P95: 5, P99: 5, Max: 5, N: 1}))
	g.Expect(percentiles(nil).N).To(Equal(0))
}
