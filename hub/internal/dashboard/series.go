package dashboard

import (
	"sync"
	"time"

	"github.com/image-cloner/image-cloner/pkg/mirror"
)

// Point is one sample of the hub's cumulative counters.
type Point struct {
	Time   time.Time `json:"time"`
	Copies float64   `json:"copies"` // copies that moved content (result "copied")
	Bytes  float64   `json:"bytes"`  // bytes uploaded to the backup registry
}

// Series keeps the last samples of the copy counters, for the plots. It is safe for concurrent
// use.
type Series struct {
	mu     sync.Mutex
	points []Point
	max    int
}

// NewSeries keeps the last n points (180, six minutes at the default interval, when n <= 0).
func NewSeries(n int) *Series {
	if n <= 0 {
		n = 180
	}
	return &Series{max: n}
}

// Add appends p, dropping the oldest point when full.
func (s *Series) Add(p Point) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.points = append(s.points, p)
	if len(s.points) > s.max {
		s.points = append(s.points[:0], s.points[len(s.points)-s.max:]...)
	}
}

// Points returns a copy of the points, oldest first.
func (s *Series) Points() []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Point(nil), s.points...)
}

// RateLimits remembers the last pull quota each registry announced (mirror.Observer.RateLimit).
type RateLimits struct {
	mu     sync.Mutex
	now    func() time.Time
	limits map[string]RateLimit
}

// RateLimit is a registry's pull quota as it last stated it.
type RateLimit struct {
	Registry  string        `json:"registry"`
	Limit     int           `json:"limit"`
	Remaining int           `json:"remaining"`
	Window    time.Duration `json:"-"`
	// WindowSeconds is Window for JSON; 0 when the registry does not say.
	WindowSeconds int64     `json:"windowSeconds,omitempty"`
	Seen          time.Time `json:"seen"`
}

// NewRateLimits returns an empty RateLimits.
func NewRateLimits() *RateLimits {
	return &RateLimits{now: time.Now, limits: map[string]RateLimit{}}
}

// Observe records limit; it is a mirror.Observer's RateLimit hook.
func (r *RateLimits) Observe(registry string, limit mirror.RateLimit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.limits[registry] = RateLimit{Registry: registry, Limit: limit.Limit, Remaining: limit.Remaining, Window: limit.Window, WindowSeconds: int64(limit.Window / time.Second), Seen: r.now()}
}

// Observer returns a mirror.Observer that records rate limits.
func (r *RateLimits) Observer() mirror.Observer {
	return mirror.Observer{RateLimit: r.Observe}
}

// List returns the quotas, sorted by registry.
func (r *RateLimits) List() []RateLimit {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]RateLimit, 0, len(r.limits))
	for _, l := range r.limits {
		out = append(out, l)
	}
	sortBy(out, func(l RateLimit) string { return l.Registry })
	return out
}
