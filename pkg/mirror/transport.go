package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// newTransport builds the chain every request of a Mirror goes through, outermost first:
//
//	retry       retries what is safe to replay, honours 429 Retry-After
//	instrument  observer hooks, rate limit headers, per-copy blob accounting
//	timeout     per-request timeout, as a stall timeout once bytes flow
//	base        the caller's transport
//
// go-containerregistry adds its authentication (token exchange, basic auth) and user agent
// above this chain; its own retries are switched off (see remoteOptions).
func newTransport(base http.RoundTripper, o *options) http.RoundTripper {
	var t http.RoundTripper = &timeoutTransport{inner: base, timeout: o.requestTimeout}
	t = &instrumentTransport{inner: t, obs: o.observer, log: o.logger}
	return &retryTransport{
		inner:       t,
		maxAttempts: o.maxAttempts,
		baseDelay:   o.baseDelay,
		maxDelay:    o.maxDelay,
		clock:       o.clock,
		obs:         o.observer,
		log:         o.logger,
	}
}

// instrumentTransport reports each request attempt to the Observer, reads rate limit headers,
// and lets the copy in progress (found in the request's context) account for blobs.
type instrumentTransport struct {
	inner http.RoundTripper
	obs   Observer
	log   logr.Logger
}

func (t *instrumentTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st := statsFrom(req.Context())
	var sent *countingBody
	if st != nil && req.Method == http.MethodPatch && req.Body != nil && req.Body != http.NoBody {
		// Count what an upload really sends: schema 1 manifests do not state blob sizes.
		sent = &countingBody{ReadCloser: req.Body}
		req = shallowClone(req)
		req.Body = sent
	}
	start := time.Now()
	resp, err := t.inner.RoundTrip(req)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	if t.obs.Request != nil {
		t.obs.Request(req.Method, req.URL.Host, status, time.Since(start))
	}
	if v := t.log.V(2); v.Enabled() {
		v.Info("Requested registry", "method", req.Method, "host", req.URL.Host, "path", req.URL.Path, "status", status, "error", err)
	}
	if resp == nil {
		return resp, err
	}
	if rl := parseRateLimit(resp.Header); rl != nil {
		if t.obs.RateLimit != nil {
			t.obs.RateLimit(req.URL.Host, *rl)
		}
		if box := rateLimitBoxFrom(req.Context()); box != nil {
			box.set(rl)
		}
	}
	if st != nil {
		var n int64 = -1
		if sent != nil {
			n = sent.n.Load()
		}
		st.observe(req, resp, n)
	}
	return resp, err
}

// shallowClone copies a request so that its body can be replaced without touching the caller's.
func shallowClone(req *http.Request) *http.Request {
	r := new(http.Request)
	*r = *req
	return r
}

type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// rateLimitBox collects the rate limit headers seen by the requests of one call (Resolve).
type rateLimitBox struct {
	mu sync.Mutex
	rl *RateLimit
}

func (b *rateLimitBox) set(rl *RateLimit) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rl = rl
}

func (b *rateLimitBox) get() *RateLimit {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rl
}

type ctxKey int

const (
	statsKey ctxKey = iota
	rateLimitKey
)

func withRateLimitBox(ctx context.Context) (context.Context, *rateLimitBox) {
	box := &rateLimitBox{}
	return context.WithValue(ctx, rateLimitKey, box), box
}

func rateLimitBoxFrom(ctx context.Context) *rateLimitBox {
	box, _ := ctx.Value(rateLimitKey).(*rateLimitBox)
	return box
}

// timeoutTransport bounds each request by a timeout that restarts whenever bytes move, in
// either direction. A manifest HEAD gets at most timeout to answer; a 2 GiB layer may take as
// long as it needs as long as it never stalls for timeout.
type timeoutTransport struct {
	inner   http.RoundTripper
	timeout time.Duration
}

// stallError is a request that made no progress for the timeout. It is a net.Error whose
// Timeout() is true, so it is retried and classified like any network timeout.
type stallError struct {
	method, host string
	timeout      time.Duration
}

func (e *stallError) Error() string {
	return fmt.Sprintf("%s request to %s made no progress for %s", e.method, e.host, e.timeout)
}
func (e *stallError) Timeout() bool   { return true }
func (e *stallError) Temporary() bool { return true }

func (t *timeoutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	w := newWatchdog(t.timeout, cancel)
	stalled := func(err error) error {
		if err != nil && w.fired.Load() && req.Context().Err() == nil {
			return &stallError{method: req.Method, host: req.URL.Host, timeout: t.timeout}
		}
		return err
	}
	r := req.WithContext(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		r.Body = &progressBody{ReadCloser: req.Body, w: w}
		if req.GetBody != nil {
			r.GetBody = func() (io.ReadCloser, error) {
				b, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				return &progressBody{ReadCloser: b, w: w}, nil
			}
		}
	}
	resp, err := t.inner.RoundTrip(r)
	if err != nil {
		w.stop()
		cancel()
		return nil, stalled(err)
	}
	resp.Body = &watchedBody{ReadCloser: resp.Body, w: w, cancel: cancel, stalled: stalled}
	return resp, nil
}

// watchdog cancels a request once no progress has been reported for timeout.
type watchdog struct {
	timeout time.Duration
	cancel  context.CancelFunc
	last    atomic.Int64 // unix nanoseconds of the last progress
	fired   atomic.Bool
	timer   *time.Timer
	mu      sync.Mutex
	stopped bool
}

func newWatchdog(timeout time.Duration, cancel context.CancelFunc) *watchdog {
	w := &watchdog{timeout: timeout, cancel: cancel}
	w.last.Store(time.Now().UnixNano())
	w.mu.Lock()
	w.timer = time.AfterFunc(timeout, w.check)
	w.mu.Unlock()
	return w
}

func (w *watchdog) progress() { w.last.Store(time.Now().UnixNano()) }

func (w *watchdog) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	idle := time.Since(time.Unix(0, w.last.Load()))
	if idle < w.timeout {
		// Progress since the timer was set: wait for the rest of the period.
		w.timer.Reset(w.timeout - idle)
		return
	}
	w.fired.Store(true)
	w.stopped = true
	w.cancel()
}

func (w *watchdog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	w.timer.Stop()
}

type progressBody struct {
	io.ReadCloser
	w *watchdog
}

func (b *progressBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.progress()
	}
	return n, err
}

type watchedBody struct {
	io.ReadCloser
	w       *watchdog
	cancel  context.CancelFunc
	stalled func(error) error
	once    sync.Once
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.progress()
	}
	if err != nil && !errors.Is(err, io.EOF) {
		err = b.stalled(err)
	}
	return n, err
}

func (b *watchedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() {
		b.w.stop()
		b.cancel()
	})
	return err
}
