package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/imageref"
)

func main() {
	var (
		runs     = flag.Int("runs", 3, "runs of every tool, each into a fresh backup registry; the median is reported")
		scale    = flag.Float64("scale", 1, "multiplies every layer size (0.05 for a quick smoke run)")
		toolsDir = flag.String("tools", defaultToolsDir(), "directory holding crane and regctl (hack/bench-tools.sh prints it)")
		out      = flag.String("out", "bench/results/copy.json", "where to write the results (empty: nowhere)")
		only     = flag.String("only", "", "comma-separated tools to run (default: image-cloner,crane,skopeo,regctl)")
		profiles = flag.String("cpuprofile-dir", "", "directory to write a CPU profile of each cold copy of the tools that run in this process (image-cloner, floor) into, <tool>-<run>.pprof")
	)
	flag.Parse()
	cpuProfileDir = *profiles
	root := newScope("bench-copy")
	code := 0
	func() {
		defer func() {
			if r := recover(); r != nil {
				f, ok := r.(fatal)
				if !ok {
					panic(r)
				}
				fmt.Fprintln(os.Stderr, "bench-copy: "+f.msg)
				code = 1
			}
		}()
		if err := run(root, *runs, *scale, *toolsDir, *out, *only); err != nil {
			fmt.Fprintln(os.Stderr, "bench-copy: "+err.Error())
			code = 1
		}
	}()
	root.Close()
	os.Exit(code)
}

func defaultToolsDir() string {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	if c := os.Getenv("IMAGE_CLONER_CACHE"); c != "" {
		return filepath.Join(c, "tools")
	}
	return filepath.Join(cache, "image-cloner", "tools")
}

// runResult is one tool's cold and warm copy into one fresh backup registry.
type runResult struct {
	Tool             string         `json:"tool"`
	Run              int            `json:"run"`
	ColdS            float64        `json:"cold_s"`
	WarmS            float64        `json:"warm_s"`
	BytesUploaded    int64          `json:"bytes_uploaded"`
	BlobsUploaded    int            `json:"blobs_uploaded"`
	DistinctUploaded int            `json:"distinct_blobs_uploaded"`
	Mounts           int            `json:"mounts"`
	BytesMounted     int64          `json:"bytes_mounted"`
	UnknownUploads   int            `json:"unknown_uploads,omitempty"`
	SignatureBytes   int64          `json:"signature_bytes_uploaded"`
	SignaturesCopied int            `json:"signatures_in_backup"`
	SourceCold       map[string]int `json:"source_requests_cold"`
	SourceWarm       map[string]int `json:"source_requests_warm"`
	// SourceColdKinds and BackupColdKinds count the cold copy's requests by method and what
	// they address (byKind).
	SourceColdKinds  map[string]int `json:"source_requests_cold_by_kind"`
	BackupColdKinds  map[string]int `json:"backup_requests_cold_by_kind"`
	BackupWarm       map[string]int `json:"backup_requests_warm"`
	DigestsPreserved bool           `json:"digests_preserved"`
	DigestProblems   []string       `json:"digest_problems,omitempty"`
	LoadBefore       string         `json:"load_before"`
	LoadAfter        string         `json:"load_after"`
	Error            string         `json:"error,omitempty"`
}

type toolSummary struct {
	Name             string         `json:"name"`
	ColdS            float64        `json:"cold_s"`
	WarmS            float64        `json:"warm_s"`
	BytesUploaded    int64          `json:"bytes_uploaded"`
	SourceGetWarm    int            `json:"source_get_warm"`
	DigestsPreserved bool           `json:"digests_preserved"`
	SourceHeadWarm   int            `json:"source_head_warm"`
	SourcePingWarm   int            `json:"source_get_v2_root_warm"`
	Mounts           int            `json:"mounts"`
	SignaturesCopied int            `json:"signatures_in_backup"`
	SignatureBytes   int64          `json:"signature_bytes_uploaded"`
	SourceWarm       map[string]int `json:"source_requests_warm"`
	// SourceColdKinds and BackupColdKinds count the cold copy's requests by method and what
	// they address (byKind).
	SourceColdKinds map[string]int `json:"source_requests_cold_by_kind"`
	BackupColdKinds map[string]int `json:"backup_requests_cold_by_kind"`
	Version         string         `json:"version"`
	Runs            int            `json:"runs"`
	FailedRuns      int            `json:"failed_runs,omitempty"`
	ColdRatio       float64        `json:"cold_ratio_to_image_cloner,omitempty"`
	WarmRatio       float64        `json:"warm_ratio_to_image_cloner,omitempty"`
}

type results struct {
	UniqueBlobBytes int64             `json:"unique_blob_bytes"`
	Signatures      int               `json:"signatures"`
	ReferrersCost   []string          `json:"referrers_cost"`
	Tools           []toolSummary     `json:"tools"`
	Skipped         map[string]string `json:"skipped,omitempty"`
	Targets         []target          `json:"targets"`
	ColdByRun       []string          `json:"image_cloner_cold_over_best_peer_by_run"`
	Fleet           map[string]any    `json:"fleet"`
	Method          map[string]any    `json:"method"`
	Machine         map[string]any    `json:"machine"`
	Runs            []runResult       `json:"runs"`
}

type target struct {
	Name  string `json:"name"`
	Met   bool   `json:"met"`
	Value string `json:"value"`
}

func run(root *scope, runs int, scale float64, toolsDir, outPath, only string) error {
	ctx := context.Background()
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Printf("[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	machine := machineInfo()
	logf("machine: %v CPUs (%v), %v memory, %s; load average %s", machine["nproc"], machine["cpu_model"], machine["mem_total"], machine["go"], loadavg())

	upstream := testenv.StartRegistry(root, testenv.RegistryOptions{Name: "upstream"})
	f, err := pushFleet(ctx, upstream.Host, scale, logf)
	if err != nil {
		return err
	}
	unique := f.uniqueBlobBytes()

	var backupHost string
	tools := []tool{&imageCloner{}, &imageCloner{noReferrers: true}}
	peerTools, skipped, err := peers(toolsDir, root.TempDir(), upstream.Host, func() string { return backupHost })
	if err != nil {
		return err
	}
	tools = append(tools, peerTools...)
	fl, err := newFloor(ctx, f, upstream.Host)
	if err != nil {
		return err
	}
	tools = append(tools, fl)
	if only != "" {
		want := strings.Split(only, ",")
		tools = slices.DeleteFunc(tools, func(t tool) bool { return !slices.Contains(want, t.Name()) })
		for name := range skipped {
			if !slices.Contains(want, name) {
				delete(skipped, name)
			}
		}
	}
	for name, why := range skipped {
		logf("%s: SKIPPED: %s", name, why)
	}
	for _, t := range tools {
		logf("tool: %-12s %s", t.Name(), t.Version())
	}

	var all []runResult
	for r := 1; r <= runs; r++ {
		// Rotate the order so that no tool always runs first, on the coolest caches.
		for i := range tools {
			t := tools[(i+r-1)%len(tools)]
			res := runOne(ctx, t, r, f, upstream, &backupHost, logf)
			all = append(all, res)
		}
	}

	sums := summarize(tools, all)
	res := results{
		UniqueBlobBytes: unique,
		Signatures:      len(f.Signatures),
		ReferrersCost:   referrersCost(sums, len(f.Signatures)),
		Tools:           sums,
		Skipped:         skipped,
		Targets:         targets(sums, unique),
		ColdByRun:       perRunRatios(all),
		Fleet: map[string]any{
			"images": len(f.Images), "multi_arch": fleetImages / multiArchEvery, "distinct_blobs": len(f.Blobs),
			"cosign_tags": len(f.Signatures),
			"base_layers": len(f.Bases), "seed": fleetSeed, "scale": scale,
		},
		Method: map[string]any{
			"concurrent_images": concurrency, "blob_jobs": blobJobs, "runs": runs,
			"destination_naming": "pkg/imageref flat scheme under <backup>/mirror",
			"image_cloner":       "one mirror.Mirror per phase, Copy from 5 goroutines",
			"peers":              "one process per image, 5 at a time",
		},
		Machine: machine,
		Runs:    all,
	}
	res.Machine["load_end"] = loadavg()
	res.Machine["total_s"] = time.Since(start).Seconds()
	printTable(os.Stdout, res)
	if outPath != "" {
		data, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(outPath), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(outPath, append(data, '\n'), 0o644); err != nil {
			return err
		}
		logf("wrote %s", outPath)
	}
	return nil
}

// runOne copies the fleet with t into a fresh backup registry, cold then warm.
func runOne(ctx context.Context, t tool, run int, f *fleet, upstream *testenv.Registry, backupHost *string, logf func(string, ...any)) (res runResult) {
	res = runResult{Tool: t.Name(), Run: run}
	s := newScope("bench-" + t.Name())
	defer s.Close()
	defer func() {
		if r := recover(); r != nil {
			fe, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			res.Error = fe.msg
			logf("%s run %d: FAILED: %s", t.Name(), run, fe.msg)
		}
	}()
	backup := testenv.StartRegistry(s, testenv.RegistryOptions{Name: "backup-" + t.Name()})
	*backupHost = backup.Host
	namer, err := imageref.NewNamer(backup.Host+"/mirror", imageref.Flat)
	if err != nil {
		s.Fatalf("%v", err)
	}
	var pairs []pair
	dstOf := map[string]name.Repository{}
	for _, img := range f.Images {
		src := fmt.Sprintf("%s/%s:%s", upstream.Host, img.Repo, img.Tag)
		ref, err := imageref.Parse(src)
		if err != nil {
			s.Fatalf("%v", err)
		}
		dst, err := namer.Backup(ref)
		if err != nil {
			s.Fatalf("%v", err)
		}
		pairs = append(pairs, pair{src: src, dst: dst.String()})
		if r, err := name.ParseReference(dst.String()); err == nil {
			dstOf[img.Repo] = r.Context()
		}
	}

	upstreamReqs := func() []testenv.Request {
		// The registry writes a request's log line once it has answered it.
		time.Sleep(300 * time.Millisecond)
		reqs, err := upstream.Requests()
		if err != nil {
			s.Fatalf("%v", err)
		}
		return reqs
	}
	before := upstreamReqs()
	res.LoadBefore = loadavg()
	stopProfile := startCPUProfile(t, run)
	t0 := time.Now()
	err = t.Copy(ctx, "cold", pairs)
	stopProfile()
	if err != nil {
		res.Error = err.Error()
		logf("%s run %d: cold copy FAILED: %v", t.Name(), run, err)
		return res
	}
	res.ColdS = time.Since(t0).Seconds()
	afterCold := upstreamReqs()
	res.SourceCold = byMethod(afterCold[len(before):])
	backupCold, err := backup.Requests()
	if err != nil {
		s.Fatalf("%v", err)
	}
	res.SourceColdKinds, res.BackupColdKinds = byKind(afterCold[len(before):]), byKind(backupCold)

	t0 = time.Now()
	if err := t.Copy(ctx, "warm", pairs); err != nil {
		res.Error = err.Error()
		logf("%s run %d: warm copy FAILED: %v", t.Name(), run, err)
		return res
	}
	res.WarmS = time.Since(t0).Seconds()
	res.LoadAfter = loadavg()
	afterWarm := upstreamReqs()
	res.SourceWarm = byMethod(afterWarm[len(afterCold):])
	backupAll, err := backup.Requests()
	if err != nil {
		s.Fatalf("%v", err)
	}
	res.BackupWarm = byMethod(backupAll[len(backupCold):])

	up := countUploads(backupAll, f.Blobs, f.SignatureBlobs)
	res.BytesUploaded, res.BlobsUploaded, res.DistinctUploaded = up.Bytes, up.Blobs, up.DistinctBlobs
	res.Mounts, res.BytesMounted, res.UnknownUploads = up.Mounts, up.MountedBytes, up.Unknown
	res.SignatureBytes = up.SignatureBytes
	if t.Name() != floorName { // the floor writes no manifest: nothing to pull or verify
		res.DigestsPreserved, res.DigestProblems = checkDigests(ctx, f, pairs)
		res.SignaturesCopied = checkSignatures(ctx, f, dstOf)
	}

	logf("%-12s run %d: cold %6.2fs  warm %6.2fs  uploaded %7.1f MiB in %3d blobs (%d distinct), %2d mounts  signatures %d/%d  source warm %v  digests preserved %v  load %s -> %s",
		t.Name(), run, res.ColdS, res.WarmS, mibf(res.BytesUploaded), res.BlobsUploaded, res.DistinctUploaded, res.Mounts,
		res.SignaturesCopied, len(f.Signatures), res.SourceWarm, res.DigestsPreserved, res.LoadBefore, res.LoadAfter)
	logf("%-12s run %d: cold requests: source %d %v; backup %d %v", t.Name(), run,
		total(res.SourceColdKinds), res.SourceColdKinds, total(res.BackupColdKinds), res.BackupColdKinds)
	for _, p := range res.DigestProblems {
		logf("  digest problem: %s", p)
	}
	return res
}

func mibf(n int64) float64 { return float64(n) / (1 << 20) }

func median[T int | int64 | float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func summarize(tools []tool, all []runResult) []toolSummary {
	var sums []toolSummary
	for _, t := range tools {
		var cold, warm []float64
		var bytes []int64
		var gets, heads, pings, mounts, sigs []int
		var sigBytes []int64
		warmByMethod := map[string][]int{}
		sum := toolSummary{Name: t.Name(), Version: t.Version(), DigestsPreserved: true}
		for _, r := range all {
			if r.Tool != t.Name() {
				continue
			}
			if r.Error != "" {
				sum.FailedRuns++
				continue
			}
			sum.Runs++
			cold, warm = append(cold, r.ColdS), append(warm, r.WarmS)
			bytes = append(bytes, r.BytesUploaded)
			gets, heads = append(gets, r.SourceWarm["GET"]), append(heads, r.SourceWarm["HEAD"])
			pings = append(pings, r.SourceWarm["GET /v2/"])
			mounts = append(mounts, r.Mounts)
			sigs, sigBytes = append(sigs, r.SignaturesCopied), append(sigBytes, r.SignatureBytes)
			for k, v := range r.SourceWarm {
				warmByMethod[k] = append(warmByMethod[k], v)
			}
			sum.DigestsPreserved = sum.DigestsPreserved && r.DigestsPreserved
		}
		if sum.Runs == 0 {
			sum.DigestsPreserved = false
		}
		sum.ColdS, sum.WarmS = round(median(cold)), round(median(warm))
		sum.BytesUploaded, sum.Mounts = median(bytes), median(mounts)
		sum.SourceGetWarm, sum.SourceHeadWarm, sum.SourcePingWarm = median(gets), median(heads), median(pings)
		sum.SignaturesCopied, sum.SignatureBytes = median(sigs), median(sigBytes)
		sum.SourceWarm = map[string]int{}
		for k, v := range warmByMethod {
			sum.SourceWarm[k] = median(v)
		}
		sums = append(sums, sum)
	}
	if len(sums) > 0 && sums[0].Name == "image-cloner" && sums[0].ColdS > 0 {
		for i := range sums {
			sums[i].ColdRatio = round(sums[i].ColdS / sums[0].ColdS)
			if sums[0].WarmS > 0 {
				sums[i].WarmRatio = round(sums[i].WarmS / sums[0].WarmS)
			}
		}
	}
	return sums
}

// referrersCost compares image-cloner with its no-referrers twin: time, bytes and the warm
// run's source requests that looking for signatures adds.
func referrersCost(sums []toolSummary, signatures int) []string {
	var on, off *toolSummary
	for i := range sums {
		switch sums[i].Name {
		case "image-cloner":
			on = &sums[i]
		case noReferrersName:
			off = &sums[i]
		}
	}
	if on == nil || off == nil || on.Runs == 0 || off.Runs == 0 {
		return nil
	}
	return []string{
		fmt.Sprintf("signatures in the backup: %d/%d with referrers, %d/%d without", on.SignaturesCopied, signatures, off.SignaturesCopied, signatures),
		fmt.Sprintf("cold: %.2fs with, %.2fs without (%+.2fs)", on.ColdS, off.ColdS, on.ColdS-off.ColdS),
		fmt.Sprintf("warm: %.2fs with, %.2fs without (%+.2fs)", on.WarmS, off.WarmS, on.WarmS-off.WarmS),
		fmt.Sprintf("signature bytes uploaded: %d", on.SignatureBytes),
		fmt.Sprintf("source requests of the warm run: %v with, %v without", on.SourceWarm, off.SourceWarm),
	}
}

func round(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }

func targets(sums []toolSummary, unique int64) []target {
	var ours *toolSummary
	best := 0.0
	bestName := ""
	for i, s := range sums {
		if s.Name == "image-cloner" {
			ours = &sums[i]
		} else if isPeer(s.Name) && s.Runs > 0 && (best == 0 || s.ColdS < best) {
			best, bestName = s.ColdS, s.Name
		}
	}
	if ours == nil || ours.Runs == 0 {
		return nil
	}
	var ts []target
	if best > 0 {
		ts = append(ts, target{Name: "cold <= 0.8x the best peer", Met: ours.ColdS <= 0.8*best,
			Value: fmt.Sprintf("%.2fs vs %s %.2fs: %.2fx", ours.ColdS, bestName, best, ours.ColdS/best)})
	}
	ts = append(ts,
		target{Name: "bytes uploaded = unique blob bytes", Met: ours.BytesUploaded == unique,
			Value: fmt.Sprintf("%d vs %d", ours.BytesUploaded, unique)},
		target{Name: "warm run makes no source GET of a manifest or blob", Met: ours.SourceGetWarm == 0,
			Value: fmt.Sprintf("%d GET, %d HEAD; and %d GET /v2/, the API root, and %d GET of the referrers API, which pull nothing",
				ours.SourceGetWarm, ours.SourceHeadWarm, ours.SourcePingWarm, ours.SourceWarm["GET referrers"])},
		target{Name: "digests preserved", Met: ours.DigestsPreserved, Value: fmt.Sprint(ours.DigestsPreserved)},
	)
	return append(ts, floorTargets(sums)...)
}

// isPeer reports whether the tool named is another project's, not image-cloner or the floor.
func isPeer(tool string) bool {
	return tool != "image-cloner" && tool != noReferrersName && tool != floorName
}

// floorTargets compares image-cloner's cold copy with the floor's: without referrers (the
// same bytes moved) and with them (what a user runs).
func floorTargets(sums []toolSummary) []target {
	var fl *toolSummary
	for i := range sums {
		if sums[i].Name == floorName && sums[i].Runs > 0 && sums[i].ColdS > 0 {
			fl = &sums[i]
		}
	}
	if fl == nil {
		return nil
	}
	var ts []target
	for _, s := range sums {
		if (s.Name == "image-cloner" || s.Name == noReferrersName) && s.Runs > 0 {
			ts = append(ts, target{Name: s.Name + " cold <= 1.2x the floor", Met: s.ColdS <= 1.2*fl.ColdS,
				Value: fmt.Sprintf("%.2fs vs floor %.2fs: %.2fx", s.ColdS, fl.ColdS, s.ColdS/fl.ColdS)})
		}
	}
	return ts
}

func printTable(w *os.File, res results) {
	fmt.Fprintf(w, "\nMedian of %v runs; unique blob bytes %d (%.1f MiB). Ratios are peer/image-cloner (above 1: image-cloner is faster or uploads less).\n\n",
		res.Method["runs"], res.UniqueBlobBytes, mibf(res.UniqueBlobBytes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tool\tcold_s\twarm_s\tuploaded_MiB\tuploaded/unique\tmounts\tsrc GET warm\tsrc HEAD warm\tsrc GET /v2/ warm\tdigests\tsignatures\tcold ratio\twarm ratio\truns\t")
	for _, s := range res.Tools {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.1f\t%.2f\t%d\t%d\t%d\t%d\t%v\t%d/%d\t%.2f\t%.2f\t%d/%d\t\n", s.Name, s.ColdS, s.WarmS,
			mibf(s.BytesUploaded), float64(s.BytesUploaded)/float64(res.UniqueBlobBytes), s.Mounts, s.SourceGetWarm, s.SourceHeadWarm, s.SourcePingWarm,
			s.DigestsPreserved, s.SignaturesCopied, res.Signatures, s.ColdRatio, s.WarmRatio, s.Runs, s.Runs+s.FailedRuns)
	}
	_ = tw.Flush()
	names := make([]string, 0, len(res.Skipped))
	for n := range res.Skipped {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "%s: skipped: %s\n", n, res.Skipped[n])
	}
	fmt.Fprintln(w, "\nWhat copying signatures costs (image-cloner with and without WithReferrers, medians):")
	for _, line := range res.ReferrersCost {
		fmt.Fprintln(w, "  "+line)
	}
	fmt.Fprintln(w, "\nimage-cloner's cold time over the best peer's, run by run (under the same load):")
	for _, line := range res.ColdByRun {
		fmt.Fprintln(w, "  "+line)
	}
	printMarkdown(w, res)
	fmt.Fprintln(w, "\nTargets (issue 3):")
	for _, t := range res.Targets {
		mark := "MET   "
		if !t.Met {
			mark = "MISSED"
		}
		fmt.Fprintf(w, "  %s %s (%s)\n", mark, t.Name, t.Value)
	}
	fmt.Fprintln(w)
}

func machineInfo() map[string]any {
	m := map[string]any{"nproc": runtime.NumCPU(), "go": runtime.Version(), "goos": runtime.GOOS, "goarch": runtime.GOARCH, "load_start": loadavg()}
	scan := func(path, key string) string {
		f, err := os.Open(path)
		if err != nil {
			return ""
		}
		defer func() { _ = f.Close() }()
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == key {
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	m["cpu_model"] = scan("/proc/cpuinfo", "model name")
	m["mem_total"] = scan("/proc/meminfo", "MemTotal")
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = strings.TrimSpace(string(data))
	}
	return m
}

// perRunRatios compares image-cloner with the fastest peer of the same run, which ran close in
// time and so under a similar load.
func perRunRatios(all []runResult) []string {
	byRun := map[int][]runResult{}
	var runs []int
	for _, r := range all {
		if _, ok := byRun[r.Run]; !ok {
			runs = append(runs, r.Run)
		}
		byRun[r.Run] = append(byRun[r.Run], r)
	}
	var out []string
	for _, n := range runs {
		var ours, best *runResult
		for i, r := range byRun[n] {
			if r.Error != "" {
				continue
			}
			if r.Tool == "image-cloner" {
				ours = &byRun[n][i]
			} else if isPeer(r.Tool) && (best == nil || r.ColdS < best.ColdS) {
				best = &byRun[n][i]
			}
		}
		if ours != nil && best != nil {
			out = append(out, fmt.Sprintf("run %d: %.2fs / %s %.2fs = %.2f", n, ours.ColdS, best.Tool, best.ColdS, ours.ColdS/best.ColdS))
		}
	}
	return out
}

// printMarkdown prints the tables of docs/benchmarks.md.
func printMarkdown(w *os.File, res results) {
	fmt.Fprintln(w, "\nMarkdown (docs/benchmarks.md):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| tool | cold_s | warm_s | bytes uploaded | uploaded / unique | mounts | source GET (warm) | source HEAD (warm) | source GET /v2/ (warm) | digests preserved | cold ratio | warm ratio |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, s := range res.Tools {
		yes := "yes"
		switch {
		case s.Name == floorName:
			yes = "n/a (no manifests)"
		case !s.DigestsPreserved:
			yes = "**no**"
		}
		fmt.Fprintf(w, "| %s | %.2f | %.2f | %d (%.1f MiB) | %.2f | %d | %d | %d | %d | %s | %.2f | %.1f |\n", s.Name, s.ColdS, s.WarmS,
			s.BytesUploaded, mibf(s.BytesUploaded), float64(s.BytesUploaded)/float64(res.UniqueBlobBytes), s.Mounts,
			s.SourceGetWarm, s.SourceHeadWarm, s.SourcePingWarm, yes, s.ColdRatio, s.WarmRatio)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| tool | run | cold_s | warm_s | load before | load after |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, s := range res.Tools {
		for _, r := range res.Runs {
			if r.Tool != s.Name {
				continue
			}
			if r.Error != "" {
				fmt.Fprintf(w, "| %s | %d | failed | | %s | |\n", r.Tool, r.Run, r.LoadBefore)
				continue
			}
			fmt.Fprintf(w, "| %s | %d | %.2f | %.2f | %s | %s |\n", r.Tool, r.Run, r.ColdS, r.WarmS, r.LoadBefore, r.LoadAfter)
		}
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// cpuProfileDir is -cpuprofile-dir.
var cpuProfileDir string

// startCPUProfile profiles this process into cpuProfileDir/<tool>-<run>.pprof, for the tools
// that copy in this process (the others are processes of their own), until the returned
// function is called; it does nothing without -cpuprofile-dir.
func startCPUProfile(t tool, run int) func() {
	switch t.(type) {
	case *imageCloner, *floor:
	default:
		return func() {}
	}
	if cpuProfileDir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(cpuProfileDir, fmt.Sprintf("%s-%d.pprof", t.Name(), run)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-copy: CPU profile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "bench-copy: CPU profile:", err)
		_ = f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}
