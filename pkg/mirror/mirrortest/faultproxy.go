package mirrortest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Fault is one misbehaviour of a FaultProxy: which requests it applies to, what happens to
// them, and how many times.
type Fault struct {
	// Method matches the request method; "" matches every method.
	Method string
	// Kind matches the kind of path; KindAny matches every kind.
	Kind PathKind
	// Repository matches the repository of the path; "" matches every repository.
	Repository string
	// ContentType matches the request's Content-Type (e.g. a schema 1 manifest PUT);
	// "" matches any.
	ContentType string

	// Status answers the request with this status instead of forwarding it, with Header and
	// Body (a JSON registry error body, for example).
	Status int
	Header http.Header
	Body   string
	// Reset closes the connection without an answer, with a TCP RST where the platform
	// allows, as a crashing registry or a broken middlebox would.
	Reset bool
	// CutAfter forwards the request but resets the connection after this many bytes of the
	// response body have been sent (0 with CutBody sends the headers only).
	CutAfter int64
	CutBody  bool
	// Digest forwards the request but replaces the Docker-Content-Digest response header,
	// as a registry that rewrites manifests would.
	Digest string
	// ResponseHeader forwards the request and adds these headers to the response, e.g.
	// Docker Hub's ratelimit-limit and ratelimit-remaining.
	ResponseHeader http.Header
	// Delay holds the request this long before doing the rest (or forwarding it), as a slow
	// or overloaded registry would. It ends early if the client goes away.
	Delay time.Duration

	// Times is how many matching requests the fault applies to; 0 means every one.
	Times int
}

type faultState struct {
	Fault
	used int
}

// FaultProxy is an http.Handler that forwards requests to a registry, except those its
// faults apply to. It counts every request it receives by method and kind of path, and how
// many faults it injected. It is safe for concurrent use.
type FaultProxy struct {
	next http.Handler

	mu       sync.Mutex
	faults   []*faultState
	counts   map[string]int
	injected int
}

// NewFaultProxy returns a FaultProxy in front of next, e.g. a Registry.
func NewFaultProxy(next http.Handler) *FaultProxy {
	return &FaultProxy{next: next, counts: map[string]int{}}
}

// NewFaultProxyTo returns a FaultProxy in front of the registry at target, such as
// "http://127.0.0.1:5000". The Host header is kept, so the registry builds its upload
// locations with the proxy's address and clients stay behind the proxy.
func NewFaultProxyTo(target string) (*FaultProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("parsing registry URL: %w", err)
	}
	return NewFaultProxy(httputil.NewSingleHostReverseProxy(u)), nil
}

// Add adds a fault. Faults are tried in the order they were added; the first that applies to
// a request (and has uses left) is injected.
func (p *FaultProxy) Add(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, &faultState{Fault: f})
}

// Clear removes every fault.
func (p *FaultProxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = nil
}

// Count returns how many requests with the method ("" for any) and kind (KindAny for any)
// the proxy received, faulty or not.
func (p *FaultProxy) Count(method string, kind PathKind) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for k, c := range p.counts {
		m, kd, _ := strings.Cut(k, " ")
		if (method == "" || method == m) && (kind == KindAny || PathKind(kd) == kind) {
			n += c
		}
	}
	return n
}

// Injected returns how many faults were injected.
func (p *FaultProxy) Injected() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected
}

// ResetCounts sets the request counts and the injected count back to zero.
func (p *FaultProxy) ResetCounts() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts = map[string]int{}
	p.injected = 0
}

func (p *FaultProxy) pick(r *http.Request) *Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	kind := KindOf(r.URL.Path)
	p.counts[r.Method+" "+string(kind)]++
	for _, f := range p.faults {
		if f.Times > 0 && f.used >= f.Times {
			continue
		}
		if (f.Method != "" && f.Method != r.Method) || (f.Kind != KindAny && f.Kind != kind) ||
			(f.Repository != "" && f.Repository != RepositoryOf(r.URL.Path)) ||
			(f.ContentType != "" && f.ContentType != r.Header.Get("Content-Type")) {
			continue
		}
		f.used++
		p.injected++
		fault := f.Fault
		return &fault
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := p.pick(r)
	if f != nil && f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return
		}
	}
	switch {
	case f == nil:
		p.next.ServeHTTP(w, r)
	case f.Reset:
		reset(w)
	case f.Status != 0:
		// Read the request body as a registry would before answering, so that the client
		// sees the answer rather than a write error.
		_, _ = io.Copy(io.Discard, r.Body)
		for k, vs := range f.Header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		if f.Body != "" && w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(f.Status)
		_, _ = io.WriteString(w, f.Body)
	case f.CutBody:
		rec := httptest.NewRecorder()
		p.next.ServeHTTP(rec, r)
		copyHeader(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		body := rec.Body.Bytes()
		if int64(len(body)) > f.CutAfter {
			body = body[:f.CutAfter]
		}
		_, _ = w.Write(body)
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		reset(w)
	case f.Digest != "" || f.ResponseHeader != nil:
		rec := httptest.NewRecorder()
		p.next.ServeHTTP(rec, r)
		copyHeader(w.Header(), rec.Header())
		if f.Digest != "" && rec.Header().Get("Docker-Content-Digest") != "" {
			w.Header().Set("Docker-Content-Digest", f.Digest)
		}
		for k, vs := range f.ResponseHeader {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		w.WriteHeader(rec.Code)
		_, _ = io.Copy(w, bytes.NewReader(rec.Body.Bytes()))
	default:
		p.next.ServeHTTP(w, r)
	}
}

func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		dst[k] = append([]string(nil), vs...)
	}
}

// reset drops the client's connection abruptly.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("mirrortest: FaultProxy needs an HTTP/1 server to reset connections")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		// Linger 0: close with RST instead of FIN.
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}
