package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/image-cloner/image-cloner/internal/testenv"
)

func main() {
	cfg := Config{Grow: true}
	flag.IntVar(&cfg.Clusters, "clusters", 50, "registration Secrets, each a distinct cluster to the hub, spread over -apiservers")
	flag.IntVar(&cfg.APIServers, "apiservers", 5, "member control planes (real kube-apiserver + etcd), one agent each")
	flag.IntVar(&cfg.Workloads, "workloads", 2000, "Deployments and DaemonSets created at once (with -grow, as many again later)")
	flag.IntVar(&cfg.Images, "images", 40, "images in the pool the workloads draw one to three each from")
	flag.IntVar(&cfg.Samples, "samples", 200, "latency samples per path (controller, admission)")
	flag.IntVar(&cfg.Cold, "cold", 3, "cold images (never backed up) to time create-to-patched for")
	flag.Int64Var(&cfg.ColdSize, "cold-size", 10<<20, "bytes of each cold image")
	flag.BoolVar(&cfg.Grow, "grow", true, "add -workloads more after convergence, to measure memory per cached workload")
	quick := flag.Bool("quick", false, "a small fleet: 2 API servers, 4 registrations, 40 workloads, 10 images, 20 samples, 1 cold image")
	bin := flag.String("bin", "", "directory holding hub and agent binaries; default: build them")
	out := flag.String("out", "bench/results", "directory for fleet.json and fleet.txt (empty: print only)")
	logs := flag.String("logs", "", "directory to keep the hub's and agents' logs in; default a temporary one, removed at the end")
	flag.StringVar(&cfg.ProfileDir, "profile-dir", "", "directory to save the hub's CPU, block, mutex and goroutine profiles of the converge phase in (the hub then serves pprof); empty: none")
	flag.DurationVar(&cfg.ProfileWindow, "profile-window", 10*time.Second, "with -profile-dir: length of each profile window (a converge phase longer than one gives several files)")
	flag.Func("hub-arg", "an argument added to the hub's (repeat it for more), e.g. -hub-arg=-v=1", func(v string) error {
		cfg.HubArgs = append(cfg.HubArgs, v)
		return nil
	})
	flag.Func("agent-arg", "an argument added to every agent's (repeat it for more), e.g. -agent-arg=--kube-qps=20", func(v string) error {
		cfg.AgentArgs = append(cfg.AgentArgs, v)
		return nil
	})
	flag.Func("hub-config", "a KEY=VALUE added to the hub's ConfigMap (repeat it for more), e.g. -hub-config=MAX_CONCURRENT_RECONCILES=20", func(v string) error {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE, got %q", v)
		}
		if cfg.HubConfig == nil {
			cfg.HubConfig = map[string]string{}
		}
		cfg.HubConfig[k] = val
		return nil
	})
	flag.Parse()
	if *quick {
		cfg.APIServers, cfg.Clusters, cfg.Workloads, cfg.Images, cfg.Samples, cfg.Cold = 2, 4, 40, 10, 20, 1
	}
	cfg.Bin, cfg.Dir = *bin, *logs
	// The API servers' warnings (the validating webhook's, in warn mode) would otherwise print
	// controller-runtime's "SetLogger was never called" with a stack trace.
	ctrl.SetLogger(logr.Discard())
	start := time.Now()
	cfg.Logf = func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	t, done := testenv.Standalone("bench-fleet")
	res, err := Run(context.Background(), t, cfg)
	done()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-fleet:", err)
		os.Exit(1)
	}
	var txt bytes.Buffer
	printResult(io.MultiWriter(os.Stdout, &txt), res)
	if *out == "" {
		return
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err == nil {
		err = os.MkdirAll(*out, 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(*out, "fleet.json"), append(data, '\n'), 0o644)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(*out, "fleet.txt"), txt.Bytes(), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-fleet: writing results:", err)
		os.Exit(1)
	}
}

// printResult prints the figures people read; fleet.json has everything.
func printResult(w io.Writer, r *Result) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	p("fleet", "%d registrations over %d API servers, %d workloads, %d images in the pool", r.Clusters, r.APIServers, r.Workloads, r.Images)
	p("converge", "%.1f s from the first create, %.1f s after the last (creating took %.1f s)", r.ConvergeS, r.AfterCreateS, r.CreateS)
	p("copies", "%d for %d unique digests (backup manifest PUTs %d); copy calls %v", r.Copies, r.UniqueDigests, r.ManifestPuts, r.CopyResults)
	p("requests/image", "upstream %s; backup %s", fmtReqs(r.UpstreamRequestsPerImage), fmtReqs(r.BackupRequestsPerImage))
	p("hub reconciles", "%d (%d failed), %d conflict log lines", r.Reconciles, r.ReconcileErrors, r.Conflicts)
	p("hub at rest", "RSS %s, live heap %s, %d goroutines, %d cached workloads (expected %d)", mib(r.HubRSSBytes), mib(r.HubHeapLive), r.HubGoroutines, r.CachedWorkloads, r.ExpectedCachedWorkloads)
	p("per cached workload", "%.0f B live heap, %.0f B RSS", r.BytesPerCachedWorkload, r.RSSPerCachedWorkload)
	p("per registration", "%.1f KiB live heap, %.1f KiB RSS (empty cache)", r.BytesPerRegistration/1024, r.RSSPerRegistration/1024)
	p("time to patch (controller)", "p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms (%d samples, %v)", r.PatchLatencyMs.P50, r.PatchLatencyMs.P95, r.PatchLatencyMs.P99, r.PatchLatencyMs.Max, r.PatchLatencyMs.N, r.PatchedBy)
	p("time to patch (admission)", "p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms (%d samples, %v)", r.AdmissionLatencyMs.P50, r.AdmissionLatencyMs.P95, r.AdmissionLatencyMs.P99, r.AdmissionLatencyMs.Max, r.AdmissionLatencyMs.N, r.AdmissionPatchedBy)
	for _, c := range r.Cold {
		p("cold "+mib(c.SizeBytes), "patched %.0f ms after create = copy %.0f ms + %.0f ms (%s)", c.PatchedMs, c.CopyMs, c.OverheadMs, c.PatchedBy)
	}
	p("agents", "largest RSS %s", mib(r.AgentMaxRSS))
	_ = tw.Flush()
	fmt.Fprintln(w, "\nmemory at rest:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "point\tregistrations\tworkloads\tcached workloads\tRSS\tlive heap\theap in use\tgoroutines\tGCs waited")
	for _, m := range r.Memory {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t%d\n", m.Label, m.Registrations, m.Workloads, m.CachedWorkloads, mib(m.RSSBytes), mib(m.HeapLiveBytes), mib(m.HeapInuseBytes), m.Goroutines, m.GCsWaited)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\ntargets (issues 9 and 14):")
	for _, t := range r.Targets {
		mark := "MET   "
		if !t.Met {
			mark = "MISSED"
		}
		fmt.Fprintf(w, "  %s %s: %s\n", mark, t.Name, t.Value)
	}
	fmt.Fprintf(w, "\nmachine: %v CPUs (%v), %v; load average at start %v, at end %v; %.0f s in all\n",
		r.Machine["nproc"], r.Machine["cpu_model"], r.Machine["mem_total"], r.Machine["load_start"], r.Machine["load_end"], r.TotalS)
}

func fmtReqs(m map[string]float64) string {
	s := fmt.Sprintf("%.1f in all", m["total"])
	for _, k := range []string{"HEAD", "GET", "PUT", "POST", "PATCH"} {
		if v, ok := m[k]; ok {
			s += fmt.Sprintf(", %s %.1f", k, v)
		}
	}
	return s
}
