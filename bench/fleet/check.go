package main

import (
	"encoding/json"
	"fmt"
)

// requiredFields are the keys of fleet.json that issue 9 names, each of which must be a
// positive number in any run that converged.
var requiredFields = []string{"clusters", "workloads", "unique_digests", "copies", "converge_s", "hub_rss_bytes", "cached_workloads"}

// Check returns what is wrong with r, whatever the timing: copies equal to unique digests (a
// copy that failed on a loaded machine and succeeded on retry still counts once), the
// caches holding exactly the fleet's workloads, the fields of fleet.json present and plausible,
// percentiles in order, every sample patched by the path its namespace allows. The benchmark's
// test runs it on a small fleet so that the benchmark cannot rot.
func Check(r *Result, samples, cold int) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	data, err := json.Marshal(r)
	if err != nil {
		return []error{err}
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return []error{err}
	}
	for _, k := range requiredFields {
		v, ok := m[k].(float64)
		if !ok || v <= 0 {
			bad("%s is %v: want a positive number", k, m[k])
		}
	}
	if r.Copies != r.UniqueDigests {
		bad("%d copies for %d unique digests: want one copy per digest", r.Copies, r.UniqueDigests)
	}
	if r.CachedWorkloads != r.ExpectedCachedWorkloads {
		bad("the hub reports %d cached workloads, want %d (every registration caches its API server's workloads)", r.CachedWorkloads, r.ExpectedCachedWorkloads)
	}
	for name, p := range map[string]Percentiles{"patch_latency_ms": r.PatchLatencyMs, "admission_latency_ms": r.AdmissionLatencyMs} {
		if p.N != samples {
			bad("%s has %d samples, want %d", name, p.N, samples)
		}
		if !(p.P50 > 0 && p.P50 <= p.P95 && p.P95 <= p.P99 && p.P99 <= p.Max) {
			bad("%s: want 0 < p50 <= p95 <= p99 <= max, got %+v", name, p)
		}
	}
	if r.PatchedBy["controller"] != samples {
		bad("the webhooks skip the controller samples' namespace, yet only %d of %d were patched by the controller (%v)", r.PatchedBy["controller"], samples, r.PatchedBy)
	}
	if len(r.Cold) != cold {
		bad("%d cold samples, want %d", len(r.Cold), cold)
	}
	for _, c := range r.Cold {
		if !(c.CopyMs > 0 && c.CopyMs <= c.PatchedMs) {
			bad("cold %s: want 0 < copy <= create-to-patched, got copy %.1f ms, patched %.1f ms", c.Image, c.CopyMs, c.PatchedMs)
		}
	}
	if len(r.Memory) < 3 {
		bad("%d memory points, want at least 3", len(r.Memory))
	}
	for _, p := range r.Memory {
		if p.RSSBytes <= 0 || p.HeapLiveBytes <= 0 || p.HeapInuseBytes <= 0 || p.Goroutines <= 0 {
			bad("memory point %q has a non-positive figure: %+v", p.Label, p)
		}
	}
	if len(r.Memory) >= 2 {
		if p0, p1 := r.Memory[0], r.Memory[1]; p0.Registrations != r.APIServers || p1.Registrations != r.Clusters {
			bad("memory points have %d and %d registrations, want %d and %d", p0.Registrations, p1.Registrations, r.APIServers, r.Clusters)
		}
	}
	if len(r.Targets) == 0 {
		bad("no targets")
	}
	return errs
}
