package admission

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/mirror/mirrortest"
)

// behindProxy puts a FaultProxy in front of r and returns it with the proxy's host.
func behindProxy(t *testing.T, r *testenv.Registry) (*mirrortest.FaultProxy, string) {
	t.Helper()
	p, err := mirrortest.NewFaultProxyTo(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, strings.TrimPrefix(srv.URL, "http://")
}

// TestRegistryProbe_tellsDownFromUp probes real distribution registries, answering, asking
// for credentials, behind a certificate the probe does not trust, stopped, and behind a fault
// proxy that answers 503, resets connections or stalls past the probe's timeout.
func TestRegistryProbe_tellsDownFromUp(t *testing.T) {
	plain := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "plain"})
	auth := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "auth", Auth: true})
	private := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "private-ca", TLS: true})
	stopped := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "stopped"})
	stopped.Stop()
	proxied := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "proxied"})

	for _, tc := range []struct {
		name     string
		host     func(t *testing.T) string
		wantDown string // "" when the host must count as up
	}{
		{"plain HTTP registry answering", func(*testing.T) string { return plain.Host }, ""},
		{"registry asking for credentials (401)", func(*testing.T) string { return auth.Host }, ""},
		{"TLS registry with a CA only the nodes trust", func(*testing.T) string { return private.Host }, ""},
		{"registry answering through the fault proxy", func(t *testing.T) string {
			_, host := behindProxy(t, proxied)
			return host
		}, ""},
		{"registry stopped", func(*testing.T) string { return stopped.Host }, "connection refused"},
		{"registry answering 503", func(t *testing.T) string {
			p, host := behindProxy(t, proxied)
			p.Add(mirrortest.Fault{Kind: mirrortest.KindPing, Status: http.StatusServiceUnavailable})
			return host
		}, "answered 503 Service Unavailable"},
		{"registry resetting connections", func(t *testing.T) string {
			p, host := behindProxy(t, proxied)
			p.Add(mirrortest.Fault{Kind: mirrortest.KindPing, Reset: true})
			return host
		}, "probing http://"},
		{"registry stalling past the timeout", func(t *testing.T) string {
			p, host := behindProxy(t, proxied)
			// Far longer than the test: Check returning at all shows the bound holds.
			p.Add(mirrortest.Fault{Kind: mirrortest.KindPing, Delay: time.Hour})
			return host
		}, "no answer within 200ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			p, err := NewRegistryProbe(WithProbeTimeout(200 * time.Millisecond))
			g.Expect(err).NotTo(HaveOccurred())
			err = p.Check(context.Background(), tc.host(t))
			if tc.wantDown == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tc.wantDown)))
		})
	}
}

// TestRegistryProbe_probesOnceAtATimeAndCachesForTheTTL sends many concurrent Checks at a
// registry that answers slowly: it gets one GET /v2/, none more until the TTL has passed on a
// fake clock, and the next probe sees it down once it answers 503, then up again.
func TestRegistryProbe_probesOnceAtATimeAndCachesForTheTTL(t *testing.T) {
	g := NewWithT(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	proxy, host := behindProxy(t, reg)
	proxy.Add(mirrortest.Fault{Kind: mirrortest.KindPing, Delay: 200 * time.Millisecond, Times: 1})

	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	p, err := NewRegistryProbe(WithProbeTimeout(time.Minute), WithProbeTTL(5*time.Second))
	g.Expect(err).NotTo(HaveOccurred())
	p.now = clock
	pings := func() int { return proxy.Count(http.MethodGet, mirrortest.KindPing) }

	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() { errs <- p.Check(context.Background(), host) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(pings()).To(Equal(1), "50 concurrent Checks, one probe")

	advance(4 * time.Second)
	g.Expect(p.Check(context.Background(), host)).To(Succeed())
	g.Expect(pings()).To(Equal(1), "within the TTL the result is reused")

	proxy.Add(mirrortest.Fault{Kind: mirrortest.KindPing, Status: http.StatusServiceUnavailable, Times: 1})
	advance(2 * time.Second)
	g.Expect(p.Check(context.Background(), host)).To(MatchError(ContainSubstring("503")))
	g.Expect(pings()).To(Equal(2))
	g.Expect(p.Check(context.Background(), host)).To(MatchError(ContainSubstring("503")), "down is cached too")
	g.Expect(pings()).To(Equal(2))

	advance(6 * time.Second)
	g.Expect(p.Check(context.Background(), host)).To(Succeed(), "up again once it answers")
	g.Expect(pings()).To(Equal(3))
}

// TestRegistryProbe_aCallerWhoseRequestEndsDoesNotWait: a Check whose context ends before the
// first probe answers returns at once and counts the host as up (never probed is not down);
// the probe carries on for later callers, who see its result.
func TestRegistryProbe_aCallerWhoseRequestEndsDoesNotWait(t *testing.T) {
	g := NewWithT(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	proxy, host := behindProxy(t, reg)
	release := make(chan struct{})
	proxy.Add(mirrortest.Fault{Kind: mirrortest.KindPing, Status: http.StatusBadGateway, Times: 1})
	p, err := NewRegistryProbe(WithProbeTimeout(time.Minute), WithProbeTransport(heldTransport{release}))
	g.Expect(err).NotTo(HaveOccurred())

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g.Expect(p.Check(ctx, host)).To(Succeed(), "no result yet: up, as without the probe")
	close(release)
	g.Expect(p.Check(context.Background(), host)).To(MatchError(ContainSubstring("502")),
		"the probe started by the cancelled call finished and its result is used")
	g.Expect(proxy.Count(http.MethodGet, mirrortest.KindPing)).To(Equal(1))
}

// heldTransport holds every request until release is closed.
type heldTransport struct{ release chan struct{} }

func (h heldTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	select {
	case <-h.release:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	return http.DefaultTransport.RoundTrip(req)
}
