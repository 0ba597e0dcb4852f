package main

import (
	"testing"

	. "github.com/onsi/gomega"
)

// Each target of the printout is met by a run that meets it and missed by one that misses it.
func TestTargets(t *testing.T) {
	met := func() *Result {
		return &Result{Clusters: 50, Copies: 40, UniqueDigests: 40, PatchLatencyMs: Percentiles{N: 200, P99: 30},
			BytesPerCachedWorkload: 706, AfterCreateS: 9.8, ConvergeS: 30.8, CreateS: 21,
			BytesPerRegistration: 150 * 1024, GoroutinesPerRegistration: 100, HubHeapLive: 60 << 20, CachedWorkloads: 20000}
	}
	for _, tc := range []struct {
		name   string
		change func(*Result)
		missed string // the target missed; "" when all are met
	}{
		{"all met", func(*Result) {}, ""},
		{"a copy more than the digests", func(r *Result) { r.Copies = 41 }, "copies == unique digests, whatever the number of clusters"},
		{"slow patches", func(r *Result) { r.PatchLatencyMs.P99 = 1000 }, "p99 time-to-patch of a backed-up image < 1 s (agent's controller)"},
		{"no patch measured", func(r *Result) { r.PatchLatencyMs.N = 0 }, "p99 time-to-patch of a backed-up image < 1 s (agent's controller)"},
		{"1 KiB per cached workload", func(r *Result) { r.BytesPerCachedWorkload = 1024 }, "hub memory < 1 KiB per cached workload (issue 14; issue 9 asked for 2 KiB)"},
		{"no cached workload measured", func(r *Result) { r.BytesPerCachedWorkload = 0 }, "hub memory < 1 KiB per cached workload (issue 14; issue 9 asked for 2 KiB)"},
		{"converged late", func(r *Result) { r.AfterCreateS = 10.1 }, "every workload patched within 10 s of the last workload's creation (issue 14)"},
		{"200 KiB per registration", func(r *Result) { r.BytesPerRegistration = 200 * 1024 }, "hub memory < 200 KiB per registration with an empty cache (issue 14)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			r := met()
			tc.change(r)
			var missed []string
			for _, target := range targets(r) {
				if !target.Met {
					missed = append(missed, target.Name)
				}
			}
			if tc.missed == "" {
				g.Expect(missed).To(BeEmpty())
			} else {
				g.Expect(missed).To(ConsistOf(tc.missed))
			}
		})
	}
}
