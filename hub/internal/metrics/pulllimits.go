package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/image-cloner/image-cloner/pkg/mirror"
)

var (
	pullLimitDesc = prometheus.NewDesc("image_cloner_pull_limit",
		"The pull quota a registry last announced in its RateLimit-Limit header (Docker Hub: manifest GETs per window), by registry host; gone once the window it was stated for has passed.",
		[]string{"registry"}, nil)
	pullLimitRemainingDesc = prometheus.NewDesc("image_cloner_pull_limit_remaining",
		"What was left of that quota in the registry's last RateLimit-Remaining header, by registry host; gone once the window it was stated for has passed.",
		[]string{"registry"}, nil)
	pullLimitWindowDesc = prometheus.NewDesc("image_cloner_pull_limit_window_seconds",
		"The length of the quota window the registry stated (the w= of its headers), by registry host; 0 when it did not say.",
		[]string{"registry"}, nil)
)

// unstatedWindow is how long a quota whose window the registry did not state is reported.
const unstatedWindow = time.Hour

// PullLimits remembers the last pull quota each registry announced (mirror.Observer.RateLimit)
// and reports it at scrape time. A quota is reported for the window it was stated for (an hour
// when the registry did not say): after that the registry has reset it, and a stale "2 left"
// would keep an alert firing with nothing wrong.
type PullLimits struct {
	now func() time.Time

	mu     sync.Mutex
	limits map[string]seenLimit
}

type seenLimit struct {
	limit mirror.RateLimit
	seen  time.Time
}

// NewPullLimits returns an empty PullLimits on the given clock (time.Now when nil).
func NewPullLimits(now func() time.Time) *PullLimits {
	if now == nil {
		now = time.Now
	}
	return &PullLimits{now: now, limits: map[string]seenLimit{}}
}

// Observe records limit; it is a mirror.Observer's RateLimit hook.
func (p *PullLimits) Observe(registry string, limit mirror.RateLimit) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limits[registry] = seenLimit{limit: limit, seen: p.now()}
}

// Describe implements prometheus.Collector.
func (p *PullLimits) Describe(ch chan<- *prometheus.Desc) {
	ch <- pullLimitDesc
	ch <- pullLimitRemainingDesc
	ch <- pullLimitWindowDesc
}

// Collect implements prometheus.Collector, forgetting the quotas whose window has passed.
func (p *PullLimits) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	for registry, s := range p.limits {
		window := s.limit.Window
		if window <= 0 {
			window = unstatedWindow
		}
		if now.Sub(s.seen) >= window {
			delete(p.limits, registry)
			continue
		}
		ch <- prometheus.MustNewConstMetric(pullLimitDesc, prometheus.GaugeValue, float64(s.limit.Limit), registry)
		ch <- prometheus.MustNewConstMetric(pullLimitRemainingDesc, prometheus.GaugeValue, float64(s.limit.Remaining), registry)
		ch <- prometheus.MustNewConstMetric(pullLimitWindowDesc, prometheus.GaugeValue, s.limit.Window.Seconds(), registry)
	}
}
