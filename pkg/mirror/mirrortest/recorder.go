package mirrortest

import (
	"net/http"
	"sync"
)

// Request is one request a Recorder saw.
type Request struct {
	Method string
	Host   string
	Path   string
	Kind   PathKind
	// Status is the response's status, 0 when the request failed without one.
	Status int
}

// Recorder is an http.RoundTripper that records every request before passing it to Transport
// (http.DefaultTransport when nil). It is safe for concurrent use.
type Recorder struct {
	Transport http.RoundTripper

	mu   sync.Mutex
	reqs []Request
}

// RoundTrip implements http.RoundTripper.
func (r *Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	t := r.Transport
	if t == nil {
		t = http.DefaultTransport
	}
	resp, err := t.RoundTrip(req)
	rec := Request{Method: req.Method, Host: req.URL.Host, Path: req.URL.Path, Kind: KindOf(req.URL.Path)}
	if resp != nil {
		rec.Status = resp.StatusCode
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, rec)
	r.mu.Unlock()
	return resp, err
}

// Requests returns the requests recorded so far, in order.
func (r *Recorder) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

// Count returns how many recorded requests went to host ("" for any) with method ("" for
// any) and kind (KindAny for any).
func (r *Recorder) Count(host, method string, kind PathKind) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, q := range r.reqs {
		if (host == "" || q.Host == host) && (method == "" || q.Method == method) && (kind == KindAny || q.Kind == kind) {
			n++
		}
	}
	return n
}

// Reset forgets the recorded requests.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = nil
}
