package metrics

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/mirror"
	"github.com/image-cloner/image-cloner/pkg/mirror/mirrortest"
)

// TestPullLimits_reportsTheLastQuotaForItsWindow: each registry's last announced quota is
// reported until the window it was stated for has passed (an hour when unstated), then dropped.
func TestPullLimits_reportsTheLastQuotaForItsWindow(t *testing.T) {
	sixHours := 6 * time.Hour
	cases := []struct {
		name    string
		limits  map[string]mirror.RateLimit
		elapsed time.Duration
		// want is limit/remaining/window by registry; nil means no series at all.
		want map[string]float64
	}{
		{name: "fresh", limits: map[string]mirror.RateLimit{"registry-1.docker.io": {Limit: 100, Remaining: 7, Window: sixHours}},
			want: map[string]float64{"limit/registry-1.docker.io": 100, "remaining/registry-1.docker.io": 7, "window/registry-1.docker.io": 21600}},
		{name: "inside the window", elapsed: sixHours - time.Second, limits: map[string]mirror.RateLimit{"registry-1.docker.io": {Limit: 100, Remaining: 7, Window: sixHours}},
			want: map[string]float64{"limit/registry-1.docker.io": 100, "remaining/registry-1.docker.io": 7, "window/registry-1.docker.io": 21600}},
		{name: "window over: the registry has reset it", elapsed: sixHours, limits: map[string]mirror.RateLimit{"registry-1.docker.io": {Limit: 100, Remaining: 7, Window: sixHours}}},
		{name: "unstated window, inside an hour", elapsed: 59 * time.Minute, limits: map[string]mirror.RateLimit{"ghcr.io": {Limit: 5000, Remaining: 10}},
			want: map[string]float64{"limit/ghcr.io": 5000, "remaining/ghcr.io": 10, "window/ghcr.io": 0}},
		{name: "unstated window, after an hour", elapsed: time.Hour, limits: map[string]mirror.RateLimit{"ghcr.io": {Limit: 5000, Remaining: 10}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
			p := NewPullLimits(func() time.Time { return now })
			for r, l := range c.limits {
				p.Observe(r, l)
			}
			now = now.Add(c.elapsed)
			reg := prometheus.NewRegistry()
			g.Expect(reg.Register(p)).To(Succeed())
			g.Expect(pullLimitSeries(g, reg)).To(Equal(orEmpty(c.want)))
		})
	}
}

// TestObserver_exportsThePullLimitARealRegistryAnnounces resolves an image through the hub's
// Observer on a real Mirror and a real distribution registry, behind a proxy that adds Docker
// Hub's rate limit headers to its answers: the gauges hold what the last answer said.
func TestObserver_exportsThePullLimitARealRegistryAnnounces(t *testing.T) {
	g := NewWithT(t)
	upstream := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "upstream"})
	proxy, err := mirrortest.NewFaultProxyTo(upstream.URL)
	g.Expect(err).NotTo(HaveOccurred())
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	ref, err := name.ParseReference(host + "/library/app:1")
	g.Expect(err).NotTo(HaveOccurred())
	img, err := random.Image(512, 1)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(remote.Write(ref, img)).To(Succeed())

	reg := prometheus.NewRegistry()
	m, err := New(reg)
	g.Expect(err).NotTo(HaveOccurred())
	mi, err := mirror.New(mirror.WithObserver(m.Observer()))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pullLimitSeries(g, reg)).To(BeEmpty(), "no registry announced a quota yet")

	for _, remaining := range []string{"12", "9"} {
		proxy.Clear()
		proxy.Add(mirrortest.Fault{Method: http.MethodHead, Kind: mirrortest.KindManifest, ResponseHeader: http.Header{
			"Ratelimit-Limit":     {"100;w=21600"},
			"Ratelimit-Remaining": {remaining + ";w=21600"},
		}})
		_, err = mi.Resolve(context.Background(), ref)
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(pullLimitSeries(g, reg)).To(Equal(map[string]float64{
		"limit/" + host: 100, "remaining/" + host: 9, "window/" + host: 21600,
	}))
}

// pullLimitSeries returns the pull limit gauges as "limit|remaining|window/registry" → value.
func pullLimitSeries(g Gomega, reg *prometheus.Registry) map[string]float64 {
	out := map[string]float64{}
	for short, metric := range map[string]string{"limit": "image_cloner_pull_limit", "remaining": "image_cloner_pull_limit_remaining", "window": "image_cloner_pull_limit_window_seconds"} {
		for registry, v := range gather(g, reg, metric) {
			out[short+"/"+registry] = v
		}
	}
	return out
}

func orEmpty(m map[string]float64) map[string]float64 {
	if m == nil {
		return map[string]float64{}
	}
	return m
}
