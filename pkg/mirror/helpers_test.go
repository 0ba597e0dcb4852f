package mirror_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"

	"github.com/image-cloner/image-cloner/pkg/mirror"
	"github.com/image-cloner/image-cloner/pkg/mirror/mirrortest"
)

// server is an in-process registry behind a FaultProxy.
type server struct {
	reg   *mirrortest.Registry
	proxy *mirrortest.FaultProxy
	host  string
}

func newServer(t *testing.T, opts ...registry.Option) *server {
	t.Helper()
	reg := mirrortest.NewRegistry(opts...)
	proxy := mirrortest.NewFaultProxy(reg)
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return &server{reg: reg, proxy: proxy, host: strings.TrimPrefix(srv.URL, "http://")}
}

func (s *server) ref(t *testing.T, ref string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s.host + "/" + ref)
	if err != nil {
		t.Fatalf("parsing %s: %v", ref, err)
	}
	return r
}

// env is a source registry, a backup registry, and a Recorder that sees every request the
// Mirror under test makes.
type env struct {
	t        *testing.T
	src, dst *server
	rec      *mirrortest.Recorder
	clock    *fakeClock
	events   *events
}

func newEnv(t *testing.T) *env {
	return &env{
		t:      t,
		src:    newServer(t),
		dst:    newServer(t),
		rec:    &mirrortest.Recorder{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		clock:  &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)},
		events: &events{},
	}
}

// mirror returns a Mirror with quick retries, the fake clock and the recorder, plus opts.
func (e *env) mirror(opts ...mirror.Option) *mirror.Mirror {
	e.t.Helper()
	all := append([]mirror.Option{
		mirror.WithTransport(e.rec),
		mirror.WithRetry(4, time.Millisecond, 20*time.Millisecond),
		mirror.WithClock(e.clock),
		mirror.WithObserver(e.events.observer()),
	}, opts...)
	m, err := mirror.New(all...)
	if err != nil {
		e.t.Fatalf("creating mirror: %v", err)
	}
	return m
}

// push writes img (a v1.Image or v1.ImageIndex) to the source registry without going through
// the proxy's counts or the recorder.
func (e *env) push(ref string, img remote.Taggable) (name.Reference, v1.Hash) {
	e.t.Helper()
	r := e.src.ref(e.t, ref)
	pushTo(e.t, r, img)
	e.src.proxy.ResetCounts()
	var d v1.Hash
	var err error
	switch x := img.(type) {
	case v1.Image:
		d, err = x.Digest()
	case v1.ImageIndex:
		d, err = x.Digest()
	}
	if err != nil {
		e.t.Fatalf("digest of %s: %v", ref, err)
	}
	return r, d
}

func pushTo(t *testing.T, r name.Reference, img remote.Taggable) {
	t.Helper()
	var err error
	switch x := img.(type) {
	case v1.Image:
		err = remote.Write(r, x)
	case v1.ImageIndex:
		err = remote.WriteIndex(r, x)
	default:
		t.Fatalf("cannot push %T", img)
	}
	if err != nil {
		t.Fatalf("pushing %s: %v", r, err)
	}
}

func randomImage(t *testing.T, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(1024, layers)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// blobsOf returns the config and layer digests of img and their total size.
func blobsOf(t *testing.T, img v1.Image) (map[v1.Hash]int64, int64) {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	out := map[v1.Hash]int64{m.Config.Digest: m.Config.Size}
	total := m.Config.Size
	for _, l := range m.Layers {
		if _, ok := out[l.Digest]; !ok {
			total += l.Size
		}
		out[l.Digest] = l.Size
	}
	return out, total
}

func head(t *testing.T, r name.Reference) *v1.Descriptor {
	t.Helper()
	d, err := remote.Head(r)
	if err != nil {
		t.Fatalf("HEAD %s: %v", r, err)
	}
	return d
}

// staticKeychain gives the same basic credentials for every registry.
type staticKeychain struct{ user, password string }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return &authn.Basic{Username: k.user, Password: k.password}, nil
}

// fakeClock is a mirror.Clock whose time moves only when told, and whose waits return at once
// and are recorded.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waits = append(c.waits, d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *fakeClock) Waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// events records what the Observer was told.
type events struct {
	mu            sync.Mutex
	retries       []string
	rateLimits    []mirror.RateLimit
	started       int
	finished      int
	inFlight      int // between CopyStarted and CopyEnded
	peakInFlight  int
	hits, misses  int
	uploaded      int64
	mounted       int64
	requests      int
	failedResults []error
}

func (e *events) observer() mirror.Observer {
	return mirror.Observer{
		CopyStarted: func(_, _ name.Reference) {
			e.locked(func() {
				e.started++
				e.inFlight++
				e.peakInFlight = max(e.peakInFlight, e.inFlight)
			})
		},
		CopyEnded: func(_, _ name.Reference, _ error) { e.locked(func() { e.inFlight-- }) },
		CopyFinished: func(_, _ name.Reference, _ mirror.Result, err error, _ time.Duration) {
			e.locked(func() {
				e.finished++
				if err != nil {
					e.failedResults = append(e.failedResults, err)
				}
			})
		},
		Request: func(_, _ string, _ int, _ time.Duration) { e.locked(func() { e.requests++ }) },
		Retry: func(method, _ string, _ int, reason string) {
			e.locked(func() { e.retries = append(e.retries, method+" "+reason) })
		},
		CacheHit:      func(name.Reference) { e.locked(func() { e.hits++ }) },
		CacheMiss:     func(name.Reference) { e.locked(func() { e.misses++ }) },
		BytesUploaded: func(n int64) { e.locked(func() { e.uploaded += n }) },
		BytesMounted:  func(n int64) { e.locked(func() { e.mounted += n }) },
		RateLimit: func(_ string, rl mirror.RateLimit) {
			e.locked(func() { e.rateLimits = append(e.rateLimits, rl) })
		},
	}
}

func (e *events) locked(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f()
}

func (e *events) Retries() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.retries...)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// expectBackupEqualsSource checks that dst holds exactly src's manifest bytes and media type.
func expectBackupEqualsSource(g Gomega, src, dst name.Reference) {
	s, err := remote.Get(src)
	g.Expect(err).NotTo(HaveOccurred())
	d, err := remote.Get(dst)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(d.Digest).To(Equal(s.Digest))
	g.Expect(d.MediaType).To(Equal(s.MediaType))
	g.Expect(string(d.Manifest)).To(Equal(string(s.Manifest)))
}
