package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/image-cloner/image-cloner/hub/internal/images"
	"github.com/image-cloner/image-cloner/hub/internal/metrics"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure a Dashboard.
type Options struct {
	// Addr is the address to listen on, e.g. "127.0.0.1:8090"; Start serves nothing when empty.
	Addr string
	// Collect builds the View every page and API call shows.
	Collect func(context.Context) View
	// Coverage computes the coverage figure of every connected member
	// (images.Reconciler.Coverage); /api/v1/coverage answers 404 when nil.
	Coverage func(context.Context) ([]images.Coverage, error)
	// Logs is the buffer the logs page shows; none when nil.
	Logs *LogBuffer
	// Metrics and Series: when both are set, Start samples Metrics into Series every
	// SampleInterval (default 2s) for the plots.
	Metrics        *metrics.Metrics
	Series         *Series
	SampleInterval time.Duration
	// MetricsAddr and ProbeAddr are shown in the footer, where Prometheus and the kubelet look.
	MetricsAddr, ProbeAddr string
	Log                    logr.Logger
}

// Dashboard serves the pages and the API. It is a manager.Runnable.
type Dashboard struct {
	o     Options
	pages map[string]*template.Template
	ready chan struct{}
	addr  string // the address listened on, once ready is closed
}

// New parses the templates and returns a Dashboard.
func New(o Options) (*Dashboard, error) {
	if o.Collect == nil {
		return nil, errors.New("dashboard: Options.Collect is required")
	}
	if o.SampleInterval == 0 {
		o.SampleInterval = 2 * time.Second
	}
	d := &Dashboard{o: o, pages: map[string]*template.Template{}, ready: make(chan struct{})}
	for _, page := range []string{"overview", "clusters", "images", "coverage", "logs"} {
		t, err := template.New(page).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("parsing template %s: %w", page, err)
		}
		d.pages[page] = t
	}
	return d, nil
}

// Start samples the series and serves on Options.Addr until ctx ends.
func (d *Dashboard) Start(ctx context.Context) error {
	if d.o.Metrics != nil && d.o.Series != nil {
		go d.sample(ctx)
	}
	if d.o.Addr == "" {
		<-ctx.Done()
		return nil
	}
	ln, err := net.Listen("tcp", d.o.Addr)
	if err != nil {
		return fmt.Errorf("dashboard: listening on %s: %w", d.o.Addr, err)
	}
	d.addr = ln.Addr().String()
	close(d.ready)
	d.o.Log.Info("Serving the dashboard", "url", "http://"+d.addr+"/")
	srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every replica serves its
// dashboard (a follower's shows no connected members).
func (d *Dashboard) NeedLeaderElection() bool { return false }

// URL returns the dashboard's base URL once it listens, or an error if ctx ends first.
func (d *Dashboard) URL(ctx context.Context) (string, error) {
	select {
	case <-d.ready:
		return "http://" + d.addr, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (d *Dashboard) sample(ctx context.Context) {
	t := time.NewTicker(d.o.SampleInterval)
	defer t.Stop()
	Sample(d.o.Series, d.o.Metrics, time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			Sample(d.o.Series, d.o.Metrics, now)
		}
	}
}

// Handler returns the dashboard's routes:
//
//	/                  overview          /api/v1/overview   Overview, rate limits and series
//	/clusters          clusters          /api/v1/clusters   []Cluster
//	/images?q=         images            /api/v1/images?q=  []Image
//	/coverage          coverage          /api/v1/coverage   CoverageView (404 without Options.Coverage)
//	/logs?cluster=&level=  logs          /api/v1/logs?cluster=&level=&limit=  []LogEntry
//
// A page asked with ?fragment=1 returns only its <main> content, which the page's script
// fetches every two seconds to update itself without a reload.
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", d.page("overview"))
	mux.HandleFunc("GET /clusters", d.page("clusters"))
	mux.HandleFunc("GET /images", d.page("images"))
	mux.HandleFunc("GET /coverage", d.page("coverage"))
	mux.HandleFunc("GET /logs", d.page("logs"))
	mux.HandleFunc("GET /api/v1/overview", d.api(func(r *http.Request, v View) any {
		return struct {
			Time       time.Time   `json:"time"`
			Overview   Overview    `json:"overview"`
			RateLimits []RateLimit `json:"rateLimits"`
			Series     []Point     `json:"series"`
		}{v.Time, v.Overview, v.RateLimits, v.Series}
	}))
	mux.HandleFunc("GET /api/v1/clusters", d.api(func(r *http.Request, v View) any { return v.Clusters }))
	mux.HandleFunc("GET /api/v1/images", d.api(func(r *http.Request, v View) any { return filterImages(v.Images, r.URL.Query().Get("q")) }))
	mux.HandleFunc("GET /api/v1/coverage", d.coverage)
	mux.HandleFunc("GET /api/v1/logs", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, d.logs(r))
	})
	return securityHeaders(mux)
}

// pageData is what a page template gets.
type pageData struct {
	Page     string
	View     View
	Query    string
	Images   []Image
	Logs     []LogEntry
	Filter   LogFilter
	Clusters []string // for the logs page's filter
	// Coverage is the coverage figure, on the overview and coverage pages; nil when the hub
	// computes none.
	Coverage *CoverageView
	Metrics  string
	Probes   string
}

func (d *Dashboard) page(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		data := pageData{Page: name, Metrics: d.o.MetricsAddr, Probes: d.o.ProbeAddr}
		if name != "logs" {
			data.View = d.o.Collect(r.Context())
		}
		if (name == "overview" || name == "coverage") && d.o.Coverage != nil {
			v := d.coverageView(r.Context())
			data.Coverage = &v
		}
		switch name {
		case "images":
			data.Query = r.URL.Query().Get("q")
			data.Images = filterImages(data.View.Images, data.Query)
		case "logs":
			data.Filter = logFilter(r)
			data.Logs = d.logs(r)
			if d.o.Logs != nil {
				data.Clusters = d.o.Logs.Clusters()
			}
		}
		tmpl := "layout"
		if r.URL.Query().Get("fragment") == "1" {
			tmpl = "main"
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := d.pages[name].ExecuteTemplate(w, tmpl, data); err != nil {
			d.o.Log.Error(err, "Rendering dashboard page", "page", name)
		}
	}
}

func (d *Dashboard) api(pick func(*http.Request, View) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, pick(r, d.o.Collect(r.Context())))
	}
}

func (d *Dashboard) logs(r *http.Request) []LogEntry {
	if d.o.Logs == nil {
		return []LogEntry{}
	}
	return d.o.Logs.Entries(logFilter(r))
}

func logFilter(r *http.Request) LogFilter {
	q := r.URL.Query()
	f := LogFilter{Cluster: q.Get("cluster"), Level: q.Get("level"), Limit: 500}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 {
		f.Limit = n
	}
	return f
}

// filterImages keeps the images whose source, backup, digest, phase, reason or clusters
// contain every word of q, ignoring case.
func filterImages(images []Image, q string) []Image {
	words := strings.Fields(strings.ToLower(q))
	out := []Image{}
next:
	for _, img := range images {
		hay := []string{img.Source, img.Backup, img.Digest, img.Phase, img.Reason}
		for _, in := range img.In {
			hay = append(hay, in.Cluster)
		}
		text := strings.ToLower(strings.Join(hay, " "))
		for _, w := range words {
			if !strings.Contains(text, w) {
				continue next
			}
		}
		out = append(out, img)
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// securityHeaders keeps the read-only pages from being framed or loading anything from
// elsewhere.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}
