package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	. "github.com/onsi/gomega"
)

// script is an http.RoundTripper that answers from a list, recording the bodies it was sent.
type script struct {
	mu      sync.Mutex
	answers []func() (*http.Response, error)
	bodies  []string
}

func (s *script) RoundTrip(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	body := ""
	if req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		body = string(b)
	}
	s.bodies = append(s.bodies, body)
	if len(s.answers) == 0 {
		return nil, errors.New("script: no more answers")
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	resp, err := a()
	if resp != nil {
		resp.Request = req
	}
	return resp, err
}

func status(code int, header ...string) func() (*http.Response, error) {
	return func() (*http.Response, error) {
		h := http.Header{}
		for i := 0; i+1 < len(header); i += 2 {
			h.Set(header[i], header[i+1])
		}
		return &http.Response{StatusCode: code, Status: fmt.Sprintf("%d %s", code, http.StatusText(code)),
			Header: h, Body: io.NopCloser(strings.NewReader(""))}, nil
	}
}

func fail(err error) func() (*http.Response, error) {
	return func() (*http.Response, error) { return nil, err }
}

type waits struct {
	mu  sync.Mutex
	now time.Time
	d   []time.Duration
}

func (w *waits) Now() time.Time { return w.now }
func (w *waits) After(d time.Duration) <-chan time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.d = append(w.d, d)
	ch := make(chan time.Time, 1)
	ch <- w.now
	return ch
}

func newRetry(inner http.RoundTripper, clock Clock) *retryTransport {
	return &retryTransport{inner: inner, maxAttempts: 4, baseDelay: 100 * time.Millisecond, maxDelay: time.Second,
		clock: clock, log: logr.Discard()}
}

func TestRetryTransport_retriesWhatIsSafeToReplay(t *testing.T) {
	reset := fmt.Errorf("read: %w", syscall.ECONNRESET)
	for _, tc := range []struct {
		name       string
		method     string
		body       string
		getBody    bool
		answers    []func() (*http.Response, error)
		wantCalls  int
		wantStatus int
		wantErr    string
	}{
		{name: "GET after a reset", method: http.MethodGet, answers: []func() (*http.Response, error){fail(reset), status(200)},
			wantCalls: 2, wantStatus: 200},
		{name: "HEAD after EOF and 503", method: http.MethodHead, answers: []func() (*http.Response, error){fail(io.EOF), status(503), status(200)},
			wantCalls: 3, wantStatus: 200},
		{name: "POST without a body (upload start, mount)", method: http.MethodPost, answers: []func() (*http.Response, error){status(502), status(202)},
			wantCalls: 2, wantStatus: 202},
		{name: "PUT whose body can be recreated", method: http.MethodPut, body: "manifest", getBody: true,
			answers: []func() (*http.Response, error){status(500), status(201)}, wantCalls: 2, wantStatus: 201},
		{name: "PUT whose body cannot be recreated", method: http.MethodPut, body: "manifest",
			answers: []func() (*http.Response, error){status(500), status(201)}, wantCalls: 1, wantStatus: 500},
		{name: "PATCH is never replayed", method: http.MethodPatch, body: "chunk", getBody: true,
			answers: []func() (*http.Response, error){fail(reset), status(202)}, wantCalls: 1, wantErr: "connection reset"},
		{name: "404 is an answer", method: http.MethodGet, answers: []func() (*http.Response, error){status(404)},
			wantCalls: 1, wantStatus: 404},
		{name: "a refused TLS handshake is not retried", method: http.MethodGet,
			answers:   []func() (*http.Response, error){fail(errors.New("tls: first record does not look like a TLS handshake"))},
			wantCalls: 1, wantErr: "tls"},
		{name: "gives up after the last attempt", method: http.MethodGet,
			answers:   []func() (*http.Response, error){status(503), status(503), status(503), status(503), status(200)},
			wantCalls: 4, wantStatus: 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			inner := &script{answers: tc.answers}
			rt := newRetry(inner, &waits{})
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequest(tc.method, "http://registry.test/v2/x/blobs/uploads/", body)
			g.Expect(err).NotTo(HaveOccurred())
			if !tc.getBody {
				req.GetBody = nil
			}

			resp, err := rt.RoundTrip(req)

			g.Expect(inner.bodies).To(HaveLen(tc.wantCalls))
			for _, b := range inner.bodies {
				g.Expect(b).To(Equal(tc.body), "every attempt sends the whole body")
			}
			if tc.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(resp.StatusCode).To(Equal(tc.wantStatus))
		})
	}
}

func TestRetryTransport_backsOffExponentiallyWithJitter(t *testing.T) {
	g := NewWithT(t)
	rt := newRetry(nil, &waits{})
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond,
		4: 800 * time.Millisecond, 5: time.Second, 9: time.Second} {
		for range 50 {
			d := rt.backoff(attempt)
			g.Expect(d).To(BeNumerically(">=", want/2), "attempt %d", attempt)
			g.Expect(d).To(BeNumerically("<=", want), "attempt %d", attempt)
		}
	}
}

func TestRetryTransport_honoursRetryAfterUpToTheMaximumDelay(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		retryAfter string
		wantWait   time.Duration
		wantLimit  bool
	}{
		{"seconds", "1", time.Second, false},
		{"HTTP date", now.Add(time.Second).Format(http.TimeFormat), time.Second, false},
		{"date in the past", now.Add(-time.Hour).Format(http.TimeFormat), 0, false},
		{"beyond the maximum", "2", 0, true},
		{"unreadable: backoff", "soon", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			inner := &script{answers: []func() (*http.Response, error){
				status(429, "Retry-After", tc.retryAfter), status(200)}}
			clock := &waits{now: now}
			rt := newRetry(inner, clock)
			req, _ := http.NewRequest(http.MethodHead, "http://registry.test/v2/x/manifests/1", nil)

			resp, err := rt.RoundTrip(req)

			if tc.wantLimit {
				var rl *RateLimitedError
				g.Expect(errors.As(err, &rl)).To(BeTrue())
				g.Expect(rl.RetryAfter).To(Equal(2 * time.Second))
				g.Expect(rl.Registry).To(Equal("registry.test"))
				g.Expect(clock.d).To(BeEmpty())
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(resp.StatusCode).To(Equal(200))
			g.Expect(clock.d).To(HaveLen(1))
			if tc.wantWait >= 0 {
				g.Expect(clock.d[0]).To(Equal(tc.wantWait))
			} else {
				g.Expect(clock.d[0]).To(BeNumerically("<=", 100*time.Millisecond))
			}
		})
	}
}

func TestRetryTransport_stopsWhenTheCallerGivesUp(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	inner := &script{answers: []func() (*http.Response, error){
		func() (*http.Response, error) { cancel(); return nil, context.Canceled },
		status(200)}}
	rt := newRetry(inner, &waits{})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://registry.test/v2/", nil)

	_, err := rt.RoundTrip(req)

	g.Expect(err).To(MatchError(context.Canceled))
	g.Expect(inner.bodies).To(HaveLen(1))
}

func TestRetryWholeUpload_onlyForWhatTheTransportCannotReplay(t *testing.T) {
	g := NewWithT(t)
	patch, _ := http.NewRequest(http.MethodPatch, "http://r/v2/x/blobs/uploads/1", nil)
	put, _ := http.NewRequest(http.MethodPut, "http://r/v2/x/manifests/1", bytes.NewReader(nil))
	g.Expect(retryWholeUpload(&url.Error{Op: "Patch", URL: "http://r/v2/x/blobs/uploads/1", Err: io.ErrUnexpectedEOF})).To(BeTrue())
	g.Expect(retryWholeUpload(&url.Error{Op: "Put", URL: "http://r/v2/x/manifests/1", Err: io.ErrUnexpectedEOF})).To(BeFalse())
	g.Expect(retryWholeUpload(transportError(patch, 503, ""))).To(BeTrue())
	g.Expect(retryWholeUpload(transportError(put, 503, ""))).To(BeFalse(), "already retried by the transport")
	g.Expect(retryWholeUpload(transportError(put, 404, "BLOB_UPLOAD_UNKNOWN"))).To(BeTrue())
	g.Expect(retryWholeUpload(&RateLimitedError{})).To(BeFalse())
	g.Expect(retryWholeUpload(context.Canceled)).To(BeFalse())
}

func TestTimeoutTransport_cancelsAStalledRequestOnly(t *testing.T) {
	g := NewWithT(t)
	// A body that trickles a byte every 10ms for 300ms is not stalled with a 200ms timeout:
	// without the progress resetting the watchdog it would be, and a gap would have to be
	// delayed 190ms by the scheduler to fire it (a 40ms timeout fired on a loaded machine).
	slow := roundTripper(func(req *http.Request) (*http.Response, error) {
		pr, pw := io.Pipe()
		go func() {
			for range 30 {
				select {
				case <-req.Context().Done():
					pw.CloseWithError(req.Context().Err())
					return
				case <-time.After(10 * time.Millisecond):
				}
				_, _ = pw.Write([]byte("x"))
			}
			_ = pw.Close()
		}()
		return &http.Response{StatusCode: 200, Body: pr}, nil
	})
	tt := &timeoutTransport{inner: slow, timeout: 200 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodGet, "http://registry.test/v2/x/blobs/sha256:1", nil)
	resp, err := tt.RoundTrip(req)
	g.Expect(err).NotTo(HaveOccurred())
	b, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(b).To(HaveLen(30))
	g.Expect(resp.Body.Close()).To(Succeed())

	// A server that never answers is.
	silent := roundTripper(func(req *http.Request) (*http.Response, error) {
		<-req.Context().Done()
		return nil, req.Context().Err()
	})
	tt = &timeoutTransport{inner: silent, timeout: 20 * time.Millisecond}
	_, err = tt.RoundTrip(req)
	var stall *stallError
	g.Expect(errors.As(err, &stall)).To(BeTrue(), "%v", err)
	g.Expect(retryableError(err)).To(BeTrue())
	g.Expect(Classify(err)).To(Equal(KindUnreachable))
}

func transportError(req *http.Request, code int, errorCode string) error {
	e := &transport.Error{StatusCode: code, Request: req}
	if errorCode != "" {
		e.Errors = []transport.Diagnostic{{Code: transport.ErrorCode(errorCode)}}
	}
	return e
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
