package mirror_test

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	. "github.com/onsi/gomega"

	"github.com/image-cloner/image-cloner/pkg/dockerconfig"
	"github.com/image-cloner/image-cloner/pkg/mirror"
	"github.com/image-cloner/image-cloner/pkg/mirror/mirrortest"
)

func TestCopy_recoversFromTransientFaults(t *testing.T) {
	const (
		onSource = iota
		onBackup
	)
	// Who retries: our transport (once per fault), our transport or net/http (which replays
	// a request itself when a reused connection breaks before any answer), or
	// go-containerregistry restarting a whole blob upload after a broken PATCH.
	const (
		byTransport = iota
		byTransportOrNetHTTP
		byUploadRestart
	)
	for _, tc := range []struct {
		name      string
		where     int
		fault     mirrortest.Fault
		retriedBy int
	}{
		{"503 on the source manifest HEAD", onSource,
			mirrortest.Fault{Method: http.MethodHead, Kind: mirrortest.KindManifest, Status: 503, Times: 2}, byTransport},
		{"500 on the source manifest GET", onSource,
			mirrortest.Fault{Method: http.MethodGet, Kind: mirrortest.KindManifest, Status: 500, Times: 2}, byTransport},
		{"502 on the source ping", onSource,
			mirrortest.Fault{Method: http.MethodGet, Kind: mirrortest.KindPing, Status: 502, Times: 1}, byTransport},
		{"connection reset on a source blob GET", onSource,
			mirrortest.Fault{Method: http.MethodGet, Kind: mirrortest.KindBlob, Reset: true, Times: 2}, byTransportOrNetHTTP},
		{"source blob cut off mid-stream", onSource,
			mirrortest.Fault{Method: http.MethodGet, Kind: mirrortest.KindBlob, CutBody: true, CutAfter: 100, Times: 1}, byUploadRestart},
		{"connection reset on the backup manifest HEAD", onBackup,
			mirrortest.Fault{Method: http.MethodHead, Kind: mirrortest.KindManifest, Reset: true, Times: 1}, byTransportOrNetHTTP},
		{"429 without Retry-After on an upload start", onBackup,
			mirrortest.Fault{Method: http.MethodPost, Kind: mirrortest.KindUpload, Status: 429, Times: 1}, byTransport},
		{"connection reset on a blob PATCH", onBackup,
			mirrortest.Fault{Method: http.MethodPatch, Kind: mirrortest.KindUpload, Reset: true, Times: 1}, byUploadRestart},
		{"503 on a blob PATCH", onBackup,
			mirrortest.Fault{Method: http.MethodPatch, Kind: mirrortest.KindUpload, Status: 503, Times: 1}, byUploadRestart},
		{"502 on a blob commit PUT", onBackup,
			mirrortest.Fault{Method: http.MethodPut, Kind: mirrortest.KindUpload, Status: 502, Times: 2}, byTransport},
		{"503 on the manifest PUT", onBackup,
			mirrortest.Fault{Method: http.MethodPut, Kind: mirrortest.KindManifest, Status: 503, Times: 2}, byTransport},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			e := newEnv(t)
			src, digest := e.push("library/app:1.0", randomImage(t, 2))
			dst := e.dst.ref(t, "backup/app:1.0")
			proxy := e.src.proxy
			if tc.where == onBackup {
				proxy = e.dst.proxy
			}
			proxy.Add(tc.fault)

			res, err := e.mirror().Copy(ctxT(t), src, dst)

			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Digest).To(Equal(digest))
			g.Expect(proxy.Injected()).To(Equal(tc.fault.Times), "every fault was hit")
			switch tc.retriedBy {
			case byTransport:
				g.Expect(e.events.Retries()).To(HaveLen(tc.fault.Times))
			case byTransportOrNetHTTP:
				g.Expect(len(e.events.Retries())).To(BeNumerically("<=", tc.fault.Times))
			case byUploadRestart:
				g.Expect(e.events.Retries()).To(BeEmpty())
				// The upload was started over: one more upload session than blobs.
				g.Expect(e.dst.proxy.Count(http.MethodPost, mirrortest.KindUpload)).To(Equal(res.BlobsUploaded + 1))
			}
			expectBackupEqualsSource(g, src, dst)
		})
	}
}

func TestCopy_givesUpAfterMaxAttempts(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	src, _ := e.push("library/app:1.0", randomImage(t, 1))
	e.src.proxy.Add(mirrortest.Fault{Method: http.MethodHead, Kind: mirrortest.KindManifest, Status: 503})

	_, err := e.mirror(mirror.WithRetry(3, time.Millisecond, 5*time.Millisecond)).Copy(ctxT(t), src, e.dst.ref(t, "backup/app:1.0"))

	g.Expect(err).To(HaveOccurred())
	g.Expect(mirror.Classify(err)).To(Equal(mirror.KindUnreachable))
	g.Expect(err.Error()).To(ContainSubstring("failed after retries"))
	g.Expect(e.src.proxy.Count(http.MethodHead, mirrortest.KindManifest)).To(Equal(3))
	g.Expect(e.events.Retries()).To(HaveLen(2))
}

func TestCopy_honoursRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name       string
		retryAfter func(now time.Time) string
		want       time.Duration
	}{
		{"delay in seconds", func(time.Time) string { return "2" }, 2 * time.Second},
		{"HTTP date", func(now time.Time) string { return now.Add(3 * time.Second).Format(http.TimeFormat) }, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			e := newEnv(t)
			src, digest := e.push("library/app:1.0", randomImage(t, 1))
			e.src.proxy.Add(mirrortest.Fault{Method: http.MethodGet, Kind: mirrortest.KindManifest, Status: 429, Times: 1,
				Header: http.Header{"Retry-After": {tc.retryAfter(e.clock.Now())}}})

			res, err := e.mirror(mirror.WithRetry(4, time.Millisecond, time.Minute)).Copy(ctxT(t), src, e.dst.ref(t, "backup/app:1.0"))

			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Digest).To(Equal(digest))
			g.Expect(e.clock.Waits()).To(Equal([]time.Duration{tc.want}), "the only wait is the one the registry asked for")
			g.Expect(e.src.proxy.Count(http.MethodGet, mirrortest.KindManifest)).To(Equal(2))
		})
	}
}

func TestCopy_returnsRateLimitedErrorInsteadOfWaitingLong(t *testing.T) {
	for _, tc := range []struct {
		name       string
		retryAfter string
		times      int
		wantAfter  time.Duration
		wantCalls  int
	}{
		{"Retry-After beyond the maximum delay", "120", 0, 120 * time.Second, 1},
		{"429 on every attempt", "", 0, 0, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			e := newEnv(t)
			src, _ := e.push("library/app:1.0", randomImage(t, 1))
			fault := mirrortest.Fault{Method: http.MethodHead, Kind: mirrortest.KindManifest, Status: 429,
				Header: http.Header{"Ratelimit-Limit": {"100;w=21600"}, "Ratelimit-Remaining": {"0;w=21600"}}}
			if tc.retryAfter != "" {
				fault.Header.Set("Retry-After", tc.retryAfter)
			}
			e.src.proxy.Add(fault)

			_, err := e.mirror().Copy(ctxT(t), src, e.dst.ref(t, "backup/app:1.0"))

			var rl *mirror.RateLimitedError
			g.Expect(errors.As(err, &rl)).To(BeTrue(), "%v", err)
			g.Expect(rl.RetryAfter).To(Equal(tc.wantAfter))
			g.Expect(rl.Registry).To(Equal(e.src.host))
			g.Expect(rl.Limit).To(Equal(&mirror.RateLimit{Limit: 100, Remaining: 0, Window: 6 * time.Hour}))
			g.Expect(mirror.Classify(err)).To(Equal(mirror.KindRateLimited))
			g.Expect(err.Error()).To(ContainSubstring("rate limiting"))
			g.Expect(e.src.proxy.Count(http.MethodHead, mirrortest.KindManifest)).To(Equal(tc.wantCalls))
			for _, w := range e.clock.Waits() {
				g.Expect(w).To(BeNumerically("<=", 20*time.Millisecond), "never waits beyond the maximum delay")
			}
		})
	}
}

func TestResolve_headsOnlyAndReportsRateLimit(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	src, digest := e.push("library/app:1.0", randomImage(t, 1))
	e.src.proxy.Add(mirrortest.Fault{Method: http.MethodHead, Kind: mirrortest.KindManifest, ResponseHeader: http.Header{
		"Ratelimit-Limit":         {"100;w=21600"},
		"Ratelimit-Remaining":     {"76;w=21600"},
		"Docker-Ratelimit-Source": {"192.0.2.1"},
	}})

	r, err := e.mirror().Resolve(ctxT(t), src)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Digest).To(Equal(digest))
	want := mirror.RateLimit{Limit: 100, Remaining: 76, Window: 6 * time.Hour, Source: "192.0.2.1"}
	g.Expect(r.RateLimit).To(Equal(&want))
	g.Expect(e.events.rateLimits).To(ConsistOf(want))
	g.Expect(e.rec.Count("", http.MethodGet, mirrortest.KindManifest)).To(Equal(0))
	g.Expect(e.rec.Count("", http.MethodHead, mirrortest.KindManifest)).To(Equal(1))
}

func TestCopy_retriesARequestThatStalls(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	src, digest := e.push("library/app:1.0", randomImage(t, 1))
	e.dst.proxy.Add(mirrortest.Fault{Method: http.MethodHead, Kind: mirrortest.KindManifest, Delay: 100 * time.Millisecond, Times: 1})

	res, err := e.mirror(mirror.WithRequestTimeout(30*time.Millisecond)).Copy(ctxT(t), src, e.dst.ref(t, "backup/app:1.0"))

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Digest).To(Equal(digest))
	g.Expect(e.events.Retries()).To(ConsistOf(ContainSubstring("made no progress for 30ms")))
}

func TestCopy_errorsSayWhatToDo(t *testing.T) {
	const password = "hunter2-Secret"
	keychain, err := dockerconfig.Keychain([]byte(`{"auths": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		src, dst string // paths in the env's registries
		fault    func(e *env)
		badDst   bool
		kind     mirror.Kind
		contains string
	}{
		{name: "missing source image", src: "library/missing:1", kind: mirror.KindNotFound,
			contains: "does not exist upstream: check the image name and tag"},
		{name: "source wants credentials", src: "library/app:1", kind: mirror.KindUnauthorized,
			fault: func(e *env) {
				e.src.proxy.Add(mirrortest.Fault{Method: http.MethodHead, Kind: mirrortest.KindManifest, Status: 401,
					Body: `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`})
			},
			contains: "check the pull credentials for"},
		{name: "backup refuses the push credentials", src: "library/app:1", kind: mirror.KindUnauthorized,
			fault: func(e *env) {
				e.dst.proxy.Add(mirrortest.Fault{Method: http.MethodPost, Kind: mirrortest.KindUpload, Status: 403,
					Body: `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`})
			},
			contains: "refused the push credentials or needs some: check them and that they may push to"},
		{name: "backup registry down", src: "library/app:1", badDst: true, kind: mirror.KindUnreachable,
			contains: "check network access"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			e := newEnv(t)
			e.push("library/app:1", randomImage(t, 1))
			if tc.fault != nil {
				tc.fault(e)
			}
			dst := e.dst.ref(t, "backup/app:1")
			if tc.badDst {
				// Nothing listens on port 1.
				dst = name.MustParseReference("127.0.0.1:1/backup/app:1")
			}
			m := e.mirror(mirror.WithSourceKeychain(keychain), mirror.WithDestinationKeychain(staticKeychain{user: "robot", password: password}))

			_, err := m.Copy(ctxT(t), e.src.ref(t, tc.src), dst)

			g.Expect(err).To(HaveOccurred())
			g.Expect(mirror.Classify(err)).To(Equal(tc.kind), "%v", err)
			g.Expect(err.Error()).To(ContainSubstring(tc.contains))
			g.Expect(err.Error()).NotTo(ContainSubstring(password))
			g.Expect(e.events.failedResults).To(HaveLen(1))
		})
	}
}

func TestCopy_boundsConcurrentCopies(t *testing.T) {
	for _, tc := range []struct {
		maxCopies int
		overlap   bool
	}{
		{maxCopies: 1, overlap: false},
		{maxCopies: 3, overlap: true},
	} {
		t.Run(fmt.Sprintf("at most %d", tc.maxCopies), func(t *testing.T) {
			g := NewWithT(t)
			e := newEnv(t)
			// Uploads are slow, so that copies that may overlap do.
			e.dst.proxy.Add(mirrortest.Fault{Method: http.MethodPut, Kind: mirrortest.KindUpload, Delay: 30 * time.Millisecond})
			tracker := &inflight{}
			e.rec.Transport = tracker.wrap(e.rec.Transport, e.dst.host)
			m := e.mirror(mirror.WithMaxConcurrentCopies(tc.maxCopies))
			ctx := ctxT(t)
			var wg sync.WaitGroup
			apps := []string{"one", "two", "three"}
			errs := make([]error, len(apps))
			srcs := make([]name.Reference, len(apps))
			for i, app := range apps {
				srcs[i], _ = e.push("team/"+app+":1", randomImage(t, 2))
			}
			start := make(chan struct{})
			for i, app := range apps {
				dst := e.dst.ref(t, "backup/"+app+":1")
				wg.Go(func() {
					<-start
					_, errs[i] = m.Copy(ctx, srcs[i], dst)
				})
			}
			close(start)
			wg.Wait()

			for _, err := range errs {
				g.Expect(err).NotTo(HaveOccurred())
			}
			// The Observer's Started/Ended bracket the same slots: never more than the bound
			// in between, and every start ended.
			e.events.locked(func() {
				g.Expect(e.events.peakInFlight).To(BeNumerically("<=", tc.maxCopies))
				g.Expect(e.events.inFlight).To(BeZero())
				g.Expect(e.events.started).To(Equal(len(apps)))
			})

			if tc.overlap {
				g.Expect(tracker.max()).To(BeNumerically(">", 1))
			} else {
				g.Expect(tracker.max()).To(Equal(1))
			}
		})
	}
}

// inflight tracks how many repositories of one registry have uploads in flight at once.
type inflight struct {
	mu      sync.Mutex
	active  map[string]int
	maxSeen int
}

func (f *inflight) wrap(next http.RoundTripper, host string) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		kind := mirrortest.KindOf(req.URL.Path)
		if req.URL.Host != host || (kind != mirrortest.KindUpload && !(kind == mirrortest.KindManifest && req.Method == http.MethodPut)) {
			return next.RoundTrip(req)
		}
		repo := mirrortest.RepositoryOf(req.URL.Path)
		f.mu.Lock()
		if f.active == nil {
			f.active = map[string]int{}
		}
		f.active[repo]++
		f.maxSeen = max(f.maxSeen, len(f.active))
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.active[repo]--; f.active[repo] == 0 {
				delete(f.active, repo)
			}
		}()
		return next.RoundTrip(req)
	})
}

func (f *inflight) max() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxSeen
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
