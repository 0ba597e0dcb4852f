package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"

	"github.com/image-cloner/image-cloner/hub/internal/images"
	"github.com/image-cloner/image-cloner/hub/internal/metrics"
	"github.com/image-cloner/image-cloner/pkg/mirror"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func testView() View {
	verified := t0.Add(-time.Minute)
	return View{
		Time: t0,
		Overview: Overview{Clusters: 2, Connected: 1, Unreachable: 1, Images: 2, Ready: 1, Failed: 1,
			Copies: map[string]float64{"copied": 3, "present": 1, "cached": 0, "shared": 0, "failed": 1}, BytesUploaded: 3 << 20, DedupeRatio: 0.25},
		Clusters: []Cluster{
			{Name: "east", Secret: "image-cloner-system/east", Convention: "label", State: "Connected", Host: "https://10.0.0.1:6443", LastProbe: t0, Workloads: 4, Phases: map[string]int{"Ready": 1, "Failed": 1}},
			{Name: "west", Secret: "image-cloner-system/west-kubeconfig", Convention: "cluster-api", State: "Unreachable", Host: "https://10.0.0.2:6443", LastError: "probing /readyz: connection refused", Workloads: -1, Phases: map[string]int{}},
		},
		Images: []Image{
			{Source: "docker.io/library/nginx:1.25", Backup: "quay.io/acme/nginx:1.25", Digest: "sha256:0123456789abcdef0123", Size: 2048, Phase: "Ready", LastVerified: &verified,
				In: []ImageIn{{Cluster: "east", Name: "nginx-1", Phase: "Ready"}}},
			{Source: "docker.io/library/missing:1", Phase: "Failed", Reason: "SourceNotFound", Message: "docker.io/library/missing:1 does not exist upstream: check the image name and tag",
				In: []ImageIn{{Cluster: "east", Name: "missing-1", Phase: "Failed", Reason: "SourceNotFound"}}},
		},
		RateLimits: []RateLimit{{Registry: "index.docker.io", Limit: 100, Remaining: 76, Window: 6 * time.Hour, Seen: t0}},
		Series:     []Point{{Time: t0.Add(-4 * time.Second), Copies: 1, Bytes: 1 << 20}, {Time: t0.Add(-2 * time.Second), Copies: 3, Bytes: 3 << 20}},
	}
}

// testCoverage is the coverage figure of the test server: east runs 10 containers, 7 from
// backups; west is not connected.
func testCoverage(context.Context) ([]images.Coverage, error) {
	return []images.Coverage{{Cluster: "east",
		Containers: map[images.ContainerState]int{images.FromBackup: 7, images.CopyFailed: 1, images.OwnerNotPatchable: 2},
		Failed:     map[string]int{"RateLimited": 1}}}, nil
}

func newTestServer(t *testing.T, logs *LogBuffer) *httptest.Server {
	t.Helper()
	d, err := New(Options{Collect: func(context.Context) View { return testView() }, Coverage: testCoverage, Logs: logs, MetricsAddr: ":8080", ProbeAddr: ":8081"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

// TestHandler_pagesShowTheView renders every page, whole and as the fragment the script
// fetches, and checks each shows the facts of the View and nothing it should not.
func TestHandler_pagesShowTheView(t *testing.T) {
	logs := NewLogBuffer(10)
	log := Tee(logr.Discard(), logs, 0)
	log.Info("Connecting member cluster", "cluster", "east", "host", "https://10.0.0.1:6443")
	log.Error(errors.New("connection refused"), "Probing member failed", "cluster", "west")
	srv := newTestServer(t, logs)

	for _, tc := range []struct {
		name, path string
		want       []string
		notWant    []string
	}{
		{"overview", "/", []string{"<title>image-cloner · overview", `id="clusters-connected">1<`, "1 unreachable", `id="images-ready">1<`, "1 failed", "25%", "3.0 MiB", "index.docker.io", "<svg", "<polyline", `/static/app.js`, ":8080/metrics"}, nil},
		{"overview fragment", "/?fragment=1", []string{`id="clusters-connected">1<`, "<svg"}, []string{"<html", "<header"}},
		{"overview coverage card", "/", []string{`id="coverage-share">70%<`, `id="coverage-upstream">3 of 10 from upstream<`, `href="/coverage"`}, nil},
		{"coverage", "/coverage", []string{`data-cluster="east" data-running="10" data-backup="7"`, "7 · 70%",
			`data-state="owner-not-patchable" class="">2<`, `data-state="failed" class="">1<`, `data-state="not-copied-yet" class="muted">0<`,
			"<b>RateLimited</b> 1", `data-cluster="(fleet)" data-running="10" data-backup="7"`, "owner not patchable", "only REWRITE_MODE pod or auto"}, []string{`id="coverage-error"`}},
		{"coverage fragment", "/coverage?fragment=1", []string{`data-cluster="east"`}, []string{"<html"}},
		{"clusters", "/clusters", []string{`data-cluster="east" data-state="Connected"`, `data-cluster="west" data-state="Unreachable"`, "image-cloner-system/west-kubeconfig", "cluster-api", "probing /readyz: connection refused", "1 ready", "1 failed"}, nil},
		{"images", "/images", []string{`data-image="docker.io/library/nginx:1.25" data-phase="Ready"`, "quay.io/acme/nginx:1.25", "sha256:01234567", "2.0 KiB", `data-phase="Failed"`, "SourceNotFound", "check the image name and tag", "2 of 2 images"}, nil},
		{"images search", "/images?q=missing", []string{"1 of 2 images matching", "docker.io/library/missing:1"}, []string{`data-image="docker.io/library/nginx:1.25"`}},
		{"images search no match", "/images?q=nothing+here", []string{"0 of 2 images", "No image matches"}, []string{"data-image="}},
		{"logs", "/logs", []string{"Connecting member cluster", "Probing member failed", "connection refused", `<option value="west"`}, nil},
		{"logs by cluster", "/logs?cluster=west&fragment=1", []string{"Probing member failed"}, []string{"Connecting member cluster"}},
		{"logs by level", "/logs?level=error&fragment=1", []string{"Probing member failed"}, []string{"Connecting member cluster"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			code, ctype, body := get(t, srv.URL+tc.path)
			g.Expect(code).To(Equal(http.StatusOK))
			g.Expect(ctype).To(HavePrefix("text/html"))
			for _, w := range tc.want {
				g.Expect(body).To(ContainSubstring(w))
			}
			for _, w := range tc.notWant {
				g.Expect(body).NotTo(ContainSubstring(w))
			}
		})
	}
}

// TestHandler_apiReturnsTheViewAsJSON decodes each API response and compares it with the View.
func TestHandler_apiReturnsTheViewAsJSON(t *testing.T) {
	logs := NewLogBuffer(10)
	log := Tee(logr.Discard(), logs, 0).WithName("clusters")
	log.Info("Connected member cluster", "cluster", "east")
	log.Error(errors.New("boom"), "Probing member failed", "cluster", "west", "attempt", 2)
	srv := newTestServer(t, logs)
	want := testView()

	for _, tc := range []struct {
		path  string
		into  func() any
		check func(g Gomega, v any)
	}{
		{"/api/v1/overview", func() any {
			return &struct {
				Overview   Overview
				RateLimits []RateLimit
				Series     []Point
			}{}
		}, func(g Gomega, v any) {
			o := v.(*struct {
				Overview   Overview
				RateLimits []RateLimit
				Series     []Point
			})
			g.Expect(o.Overview).To(Equal(want.Overview))
			g.Expect(o.RateLimits).To(HaveLen(1))
			g.Expect(o.RateLimits[0].Remaining).To(Equal(76))
			g.Expect(o.Series).To(HaveLen(2))
		}},
		{"/api/v1/clusters", func() any { return &[]Cluster{} }, func(g Gomega, v any) {
			g.Expect(*v.(*[]Cluster)).To(HaveLen(2))
			g.Expect((*v.(*[]Cluster))[1].LastError).To(Equal(want.Clusters[1].LastError))
			g.Expect((*v.(*[]Cluster))[1].Workloads).To(Equal(-1))
		}},
		{"/api/v1/images", func() any { return &[]Image{} }, func(g Gomega, v any) {
			g.Expect(*v.(*[]Image)).To(HaveLen(2))
			g.Expect((*v.(*[]Image))[1].Reason).To(Equal("SourceNotFound"))
			g.Expect((*v.(*[]Image))[0].In[0].Cluster).To(Equal("east"))
		}},
		{"/api/v1/images?q=NGINX+east", func() any { return &[]Image{} }, func(g Gomega, v any) {
			g.Expect(*v.(*[]Image)).To(HaveLen(1))
			g.Expect((*v.(*[]Image))[0].Source).To(Equal("docker.io/library/nginx:1.25"))
		}},
		{"/api/v1/logs", func() any { return &[]LogEntry{} }, func(g Gomega, v any) {
			es := *v.(*[]LogEntry)
			g.Expect(es).To(HaveLen(2))
			g.Expect(es[0].Message).To(Equal("Probing member failed"), "newest first")
			g.Expect(es[0].Level).To(Equal("error"))
			g.Expect(es[0].Cluster).To(Equal("west"))
			g.Expect(es[0].Error).To(Equal("boom"))
			g.Expect(es[0].Logger).To(Equal("clusters"))
			g.Expect(es[0].Values).To(Equal([]string{"attempt=2"}))
		}},
		{"/api/v1/logs?cluster=east", func() any { return &[]LogEntry{} }, func(g Gomega, v any) {
			es := *v.(*[]LogEntry)
			g.Expect(es).To(HaveLen(1))
			g.Expect(es[0].Message).To(Equal("Connected member cluster"))
		}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			g := NewWithT(t)
			code, ctype, body := get(t, srv.URL+tc.path)
			g.Expect(code).To(Equal(http.StatusOK))
			g.Expect(ctype).To(Equal("application/json"))
			v := tc.into()
			g.Expect(json.Unmarshal([]byte(body), v)).To(Succeed(), body)
			tc.check(g, v)
		})
	}
}

// TestHandler_servesOnlyEmbeddedAssetsAndReadOnlyRoutes: the static files come from the binary,
// nothing refers to another origin, and writes are refused.
func TestHandler_servesOnlyEmbeddedAssetsAndReadOnlyRoutes(t *testing.T) {
	g := NewWithT(t)
	srv := newTestServer(t, nil)
	for _, path := range []string{"/static/app.js", "/static/style.css"} {
		code, _, body := get(t, srv.URL+path)
		g.Expect(code).To(Equal(http.StatusOK), path)
		g.Expect(body).NotTo(ContainSubstring("http://"), path)
		g.Expect(body).NotTo(ContainSubstring("https://"), path)
	}
	for _, path := range []string{"/", "/clusters", "/images", "/logs"} {
		_, _, body := get(t, srv.URL+path)
		g.Expect(body).NotTo(MatchRegexp(`(src|href)="(https?:)?//`), path)
	}
	resp, err := http.Post(srv.URL+"/api/v1/images", "application/json", strings.NewReader("{}"))
	g.Expect(err).NotTo(HaveOccurred())
	resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusMethodNotAllowed))
	code, _, _ := get(t, srv.URL+"/nope")
	g.Expect(code).To(Equal(http.StatusNotFound))
}

// TestTee_passesEntriesOnAndKeepsTheLastN logs through a Tee over a funcr logger: every line
// reaches both, the buffer keeps only the last N, V(1) lines are kept only when asked.
func TestTee_passesEntriesOnAndKeepsTheLastN(t *testing.T) {
	g := NewWithT(t)
	var printed []string
	under := funcr.New(func(prefix, args string) { printed = append(printed, prefix+" "+args) }, funcr.Options{Verbosity: 0})
	buf := NewLogBuffer(3)
	log := Tee(under, buf, 0).WithName("hub").WithValues("cluster", "east")
	for i := range 5 {
		log.Info("Line", "i", i)
	}
	log.V(1).Info("Debug line")
	g.Expect(printed).To(HaveLen(5))
	g.Expect(printed[4]).To(ContainSubstring(`"cluster"="east"`))
	es := buf.Entries(LogFilter{})
	g.Expect(es).To(HaveLen(3))
	g.Expect(es[0].Values).To(Equal([]string{"i=4"}))
	g.Expect(es[2].Values).To(Equal([]string{"i=2"}))
	g.Expect(es[0].Logger).To(Equal("hub"))
	g.Expect(es[0].Cluster).To(Equal("east"))

	debug := NewLogBuffer(3)
	Tee(under, debug, 1).V(1).Info("Debug line")
	g.Expect(debug.Entries(LogFilter{})).To(ConsistOf(HaveField("Level", "debug")))
	g.Expect(debug.Entries(LogFilter{Level: "info"})).To(BeEmpty())
	g.Expect(printed).To(HaveLen(5), "funcr at V(0) prints no debug line")
}

// TestSummarize_anImageIsAsFarAsItsSlowestMember is a table of ClonedImage phases in several
// members and the image's fleet-wide phase and reason.
func TestSummarize_anImageIsAsFarAsItsSlowestMember(t *testing.T) {
	for _, tc := range []struct {
		name       string
		in         []ImageIn
		phase      string
		reason     string
		overviewAs string
	}{
		{"all ready", []ImageIn{{Cluster: "a", Phase: "Ready"}, {Cluster: "b", Phase: "Ready"}}, "Ready", "", "ready"},
		{"one cloning", []ImageIn{{Cluster: "a", Phase: "Ready"}, {Cluster: "b", Phase: "Cloning"}}, "Cloning", "", "pending"},
		{"pending before cloning", []ImageIn{{Cluster: "a", Phase: "Cloning"}, {Cluster: "b", Phase: "Pending"}}, "Pending", "", "pending"},
		{"failed wins", []ImageIn{{Cluster: "a", Phase: "Pending"}, {Cluster: "b", Phase: "Failed", Reason: "RateLimited"}, {Cluster: "c", Phase: "Ready"}}, "Failed", "RateLimited", "failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			img := &Image{Source: "x", In: tc.in}
			summarize(img)
			g.Expect(img.Phase).To(Equal(tc.phase))
			g.Expect(img.Reason).To(Equal(tc.reason))
			o := overview(View{Images: []Image{*img}}, nil)
			got := map[string]int{"ready": o.Ready, "pending": o.Pending, "failed": o.Failed}
			g.Expect(got[tc.overviewAs]).To(Equal(1))
			g.Expect(o.Ready + o.Pending + o.Failed).To(Equal(1))
		})
	}
}

// TestPlot_scalesTheSeriesIntoTheBox: the line spans the box, the highest point at the top.
func TestPlot_scalesTheSeriesIntoTheBox(t *testing.T) {
	g := NewWithT(t)
	svg := string(plot([]Point{{Copies: 0}, {Copies: 5}, {Copies: 10}}, "copies", "copies"))
	g.Expect(svg).To(ContainSubstring(`points="4.0,86.0 160.0,45.0 316.0,4.0"`))
	g.Expect(svg).To(ContainSubstring(">10</text>"))
	g.Expect(string(plot(nil, "bytes", "bytes"))).NotTo(ContainSubstring("polyline"))
}

// TestCollector_remembersTheImagesOfAMemberThatStopsAnswering: while a member is not connected
// its last known images stay, marked stale; once it is no longer registered they go.
func TestCollector_remembersTheImagesOfAMemberThatStopsAnswering(t *testing.T) {
	g := NewWithT(t)
	c := &Collector{}
	fresh := []ImageIn{{Cluster: "east", Name: "nginx", Phase: "Ready"}}
	g.Expect(c.remember("east", fresh, true)).To(Equal(fresh))
	stale := c.remember("east", nil, false)
	g.Expect(stale).To(HaveLen(1))
	g.Expect(stale[0].Stale).To(BeTrue())
	g.Expect(stale[0].Name).To(Equal("nginx"))
	g.Expect(c.remember("west", nil, false)).To(BeEmpty(), "never read")
	c.forget([]Cluster{{Name: "west"}})
	g.Expect(c.remember("east", nil, false)).To(BeEmpty(), "east was unregistered")
}

// TestRateLimits_recordsWhatRegistriesAnnounceThroughTheHubsObserverChain: the hub chains the
// metrics' observer and RateLimits' into the Mirror's one Observer; the quota gets through.
func TestRateLimits_recordsWhatRegistriesAnnounceThroughTheHubsObserverChain(t *testing.T) {
	g := NewWithT(t)
	r := NewRateLimits()
	r.now = func() time.Time { return t0 }
	obs := metrics.Chain(metrics.Chain(mirror.Observer{}, r.Observer()), mirror.Observer{})
	obs.RateLimit("index.docker.io", mirror.RateLimit{Limit: 100, Remaining: 76, Window: 6 * time.Hour})
	obs.RateLimit("ghcr.io", mirror.RateLimit{Limit: 5000, Remaining: 4999})
	obs.RateLimit("index.docker.io", mirror.RateLimit{Limit: 100, Remaining: 75, Window: 6 * time.Hour})
	g.Expect(r.List()).To(Equal([]RateLimit{
		{Registry: "ghcr.io", Limit: 5000, Remaining: 4999, Seen: t0},
		{Registry: "index.docker.io", Limit: 100, Remaining: 75, Window: 6 * time.Hour, WindowSeconds: 21600, Seen: t0},
	}))
}

// TestHandler_coverageAnswersTheFigureAndNamesWhatCouldNotBeRead: the figure as
// images.Reconciler.Coverage returns it, with its error; 404 when the hub computes none.
func TestHandler_coverageAnswersTheFigureAndNamesWhatCouldNotBeRead(t *testing.T) {
	east := images.Coverage{Cluster: "east", Containers: map[images.ContainerState]int{images.FromBackup: 7, images.CopyFailed: 1},
		Failed: map[string]int{"RateLimited": 1}}
	for _, tc := range []struct {
		name     string
		coverage func(context.Context) ([]images.Coverage, error)
		code     int
		want     CoverageView
	}{
		{"every member read", func(context.Context) ([]images.Coverage, error) { return []images.Coverage{east}, nil },
			http.StatusOK, CoverageView{Clusters: []images.Coverage{east}, Fleet: map[images.ContainerState]int{images.FromBackup: 7, images.CopyFailed: 1}}},
		{"a member not read", func(context.Context) ([]images.Coverage, error) { return nil, errors.New("cluster west: disconnected") },
			http.StatusOK, CoverageView{Clusters: []images.Coverage{}, Fleet: map[images.ContainerState]int{}, Error: "cluster west: disconnected"}},
		{"no coverage", nil, http.StatusNotFound, CoverageView{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			srv := serveCoverage(t, tc.coverage)
			code, _, body := get(t, srv.URL+"/api/v1/coverage")
			g.Expect(code).To(Equal(tc.code))
			if code != http.StatusOK {
				return
			}
			var got CoverageView
			g.Expect(json.Unmarshal([]byte(body), &got)).To(Succeed(), body)
			g.Expect(got.Time).NotTo(BeZero())
			got.Time = time.Time{}
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

// The coverage page's lines: each member's running containers are the sum of its states, the
// fleet's line sums the members', and every upstream state has a column, zeros included, and
// a label that says what it means.
func TestCoverageView_rowsSumEachMemberAndTheFleet(t *testing.T) {
	v := CoverageView{Clusters: []images.Coverage{
		{Cluster: "east", Containers: map[images.ContainerState]int{images.FromBackup: 3, images.OptedOut: 1}},
		{Cluster: "west", Containers: map[images.ContainerState]int{images.CopyFailed: 2, images.NotPatchedYet: 4}, Failed: map[string]int{"Unauthorized": 2}},
		{Cluster: "idle", Containers: map[images.ContainerState]int{}},
	}, Fleet: map[images.ContainerState]int{images.FromBackup: 3, images.OptedOut: 1, images.CopyFailed: 2, images.NotPatchedYet: 4}}
	for _, tc := range []struct {
		row                               CoverageRow
		running, backup, upstream, states int
		share                             float64
	}{
		{v.Rows()[0], 4, 3, 1, len(images.ContainerStates) - 1, 0.75},
		{v.Rows()[1], 6, 0, 6, len(images.ContainerStates) - 1, 0},
		{v.Rows()[2], 0, 0, 0, len(images.ContainerStates) - 1, 1}, // nothing runs: nothing depends on upstream
		{v.Total(), 10, 3, 7, len(images.ContainerStates) - 1, 0.3},
	} {
		t.Run(tc.row.Cluster, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(tc.row.Running).To(Equal(tc.running))
			g.Expect(tc.row.Backup).To(Equal(tc.backup))
			g.Expect(tc.row.FromUpstream()).To(Equal(tc.upstream))
			g.Expect(tc.row.Upstream).To(HaveLen(tc.states))
			g.Expect(tc.row.Share()).To(BeNumerically("~", tc.share, 1e-9))
			sum := 0
			for _, sc := range tc.row.Upstream {
				g.Expect(sc.State).NotTo(Equal(images.FromBackup))
				sum += sc.N
			}
			g.Expect(sum).To(Equal(tc.upstream))
		})
	}
	NewWithT(t).Expect(v.Total().Failed).To(Equal(map[string]int{"Unauthorized": 2}))
	for _, s := range upstreamStates() {
		NewWithT(t).Expect(stateLabels[s][0]).NotTo(BeEmpty(), "state %s has no label", s)
		NewWithT(t).Expect(stateLabels[s][1]).NotTo(BeEmpty(), "state %s is not explained", s)
	}
}

// The overview's coverage card does not claim full coverage when nothing was counted, says
// when a member could not be counted, and is absent when the hub computes no coverage.
func TestHandler_coverageCardSaysWhatItCouldNotCount(t *testing.T) {
	for _, tc := range []struct {
		name          string
		coverage      func(context.Context) ([]images.Coverage, error)
		want, notWant []string
	}{
		{"counted", testCoverage, []string{`id="coverage-share">70%<`}, []string{`id="coverage-uncounted"`, "no running container counted"}},
		{"nothing runs", func(context.Context) ([]images.Coverage, error) {
			return []images.Coverage{{Cluster: "east", Containers: map[images.ContainerState]int{}}}, nil
		}, []string{`id="coverage-share">–<`, "no running container counted"}, []string{"100%", `id="coverage-uncounted"`}},
		{"a member not counted", func(context.Context) ([]images.Coverage, error) {
			return nil, errors.New("cluster west is Unreachable: its containers are not counted")
		}, []string{`id="coverage-uncounted"`, "no running container counted"}, []string{"100%"}},
		{"no coverage", nil, nil, []string{`id="coverage-card"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			srv := serveCoverage(t, tc.coverage)
			for _, path := range []string{"/", "/coverage"} {
				code, _, body := get(t, srv.URL+path)
				g.Expect(code).To(Equal(http.StatusOK))
				if path == "/coverage" {
					switch tc.name {
					case "no coverage":
						g.Expect(body).To(ContainSubstring("computes no coverage figure"))
					case "a member not counted":
						g.Expect(body).To(ContainSubstring(`id="coverage-error">Not counted: cluster west is Unreachable`))
					default:
						g.Expect(body).NotTo(ContainSubstring(`id="coverage-error"`))
					}
					continue
				}
				for _, w := range tc.want {
					g.Expect(body).To(ContainSubstring(w))
				}
				for _, w := range tc.notWant {
					g.Expect(body).NotTo(ContainSubstring(w))
				}
			}
		})
	}
}

// serveCoverage serves the test View with coverage as its coverage figure.
func serveCoverage(t *testing.T, coverage func(context.Context) ([]images.Coverage, error)) *httptest.Server {
	t.Helper()
	d, err := New(Options{Collect: func(context.Context) View { return testView() }, Coverage: coverage})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	return srv
}
