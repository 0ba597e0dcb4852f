package mirror

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RateLimit is a registry's pull quota as its response headers state it. Docker Hub sends
// `ratelimit-limit: 100;w=21600` and `ratelimit-remaining: 76;w=21600` (100 manifest GETs per
// 6 hours) and `docker-ratelimit-source` naming who is charged (an IP or an account):
// https://docs.docker.com/docker-hub/usage/pulls/
type RateLimit struct {
	// Limit is the number of requests allowed per Window.
	Limit int
	// Remaining is what is left of Limit in the current window.
	Remaining int
	// Window is the length of the quota window; 0 when the registry does not say.
	Window time.Duration
	// Source is who the quota is counted against, when the registry says.
	Source string
}

// parseRateLimit reads the rate limit headers of a response; nil when there are none.
func parseRateLimit(h http.Header) *RateLimit {
	limit, limitWindow, okLimit := parseQuota(h.Get("RateLimit-Limit"))
	remaining, remainingWindow, okRemaining := parseQuota(h.Get("RateLimit-Remaining"))
	if !okLimit && !okRemaining {
		return nil
	}
	rl := &RateLimit{Limit: limit, Remaining: remaining, Window: limitWindow, Source: h.Get("Docker-RateLimit-Source")}
	if rl.Window == 0 {
		rl.Window = remainingWindow
	}
	if !okRemaining {
		// Only the limit is known: do not claim the quota is spent.
		rl.Remaining = limit
	}
	return rl
}

// parseQuota parses "100;w=21600" (or a bare "100") into the count and the window.
func parseQuota(v string) (int, time.Duration, bool) {
	if v == "" {
		return 0, 0, false
	}
	parts := strings.Split(v, ";")
	n, err := strconv.Atoi(strings.TrimSpace(parts[0]))
	if err != nil || n < 0 {
		return 0, 0, false
	}
	var window time.Duration
	for _, p := range parts[1:] {
		k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || k != "w" {
			continue
		}
		if s, err := strconv.Atoi(val); err == nil && s > 0 {
			window = time.Duration(s) * time.Second
		}
	}
	return n, window, true
}

// parseRetryAfter reads a Retry-After header, either delay-seconds or an HTTP-date
// (RFC 9110 section 10.2.3). ok is false when the header is absent or unreadable.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0, true
		}
		// Bound the multiplication: a year is already "much longer than any cap".
		if s > int64(365*24*time.Hour/time.Second) {
			s = int64(365 * 24 * time.Hour / time.Second)
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}
