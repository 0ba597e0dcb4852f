package admission

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/image-cloner/image-cloner/pkg/imageref"
)

// Defaults of a RegistryProbe.
const (
	DefaultProbeTimeout = 2 * time.Second
	DefaultProbeTTL     = 5 * time.Second
)

// dockerHubEndpoint is where Docker Hub's API is: docker.io itself redirects to a web page.
const dockerHubEndpoint = "registry-1.docker.io"

// RegistryProbe tells whether registry hosts answer. Its probe is what every client of the
// distribution API does first, a GET /v2/ (RFC "API version check"), and is deliberately
// written with net/http: the agent must not link the copy engine pkg/mirror.
//
// A host is up when it answers anything below 500 (401 and 403 included: the kubelet brings
// credentials, the probe does not), or presents a certificate this process does not trust (the
// nodes may: a private CA is the kubelet's business). It is down when it cannot be reached,
// does not answer within the timeout, or answers 5xx. A result is kept for the TTL; after it,
// the next Check probes again. At most one probe per host runs at a time, and callers wait for
// it at most the probe's timeout: the admission's hot path never waits longer.
type RegistryProbe struct {
	client  *http.Client
	timeout time.Duration
	ttl     time.Duration
	now     func() time.Time

	mu    sync.Mutex
	hosts map[string]*hostState
}

type hostState struct {
	known   bool      // a probe has finished
	checked time.Time // when it finished
	err     error     // its result; nil when the host answered
	running chan struct{}
}

// ProbeOption configures a RegistryProbe.
type ProbeOption func(*RegistryProbe) error

// WithProbeTimeout bounds one probe, connection and answer. The default is
// DefaultProbeTimeout (2s), well inside the webhooks' 5s timeoutSeconds.
func WithProbeTimeout(d time.Duration) ProbeOption {
	return func(p *RegistryProbe) error {
		if d <= 0 {
			return fmt.Errorf("probe timeout must be positive, got %s", d)
		}
		p.timeout = d
		return nil
	}
}

// WithProbeTTL sets how long a probe's result is used before the host is probed again. The
// default is DefaultProbeTTL (5s): an outage is noticed within seconds, and a busy cluster
// admitting hundreds of Pods a second costs the registry one request per TTL.
func WithProbeTTL(d time.Duration) ProbeOption {
	return func(p *RegistryProbe) error {
		if d <= 0 {
			return fmt.Errorf("probe TTL must be positive, got %s", d)
		}
		p.ttl = d
		return nil
	}
}

// WithProbeTransport sets the transport of the probes. The default is a clone of
// http.DefaultTransport (proxy from the environment, the system's roots).
func WithProbeTransport(rt http.RoundTripper) ProbeOption {
	return func(p *RegistryProbe) error {
		if rt == nil {
			return errors.New("probe transport must not be nil")
		}
		p.client.Transport = rt
		return nil
	}
}

// NewRegistryProbe returns a RegistryProbe with the options applied.
func NewRegistryProbe(opts ...ProbeOption) (*RegistryProbe, error) {
	p := &RegistryProbe{
		client: &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			// A redirect of /v2/ is an answer; following it could leave the bound.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		timeout: DefaultProbeTimeout,
		ttl:     DefaultProbeTTL,
		now:     time.Now,
		hosts:   map[string]*hostState{},
	}
	for _, o := range opts {
		if err := o(p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Check returns nil when the registry host (host[:port] as in image references, e.g.
// imageref.Reference.Registry) answered its last probe, or why it did not. A result older
// than the TTL is refreshed first. Check waits for a probe at most its timeout; if ctx ends
// before, the last result counts, and a host never probed counts as up (as before the probe
// existed: the probe may only ever take rewrites away, never block an admission).
func (p *RegistryProbe) Check(ctx context.Context, host string) error {
	p.mu.Lock()
	s := p.hosts[host]
	if s == nil {
		s = &hostState{}
		p.hosts[host] = s
	}
	if s.known && p.now().Sub(s.checked) < p.ttl {
		err := s.err
		p.mu.Unlock()
		return err
	}
	running := s.running
	if running == nil {
		running = make(chan struct{})
		s.running = running
		go p.probe(host, s, running)
	}
	p.mu.Unlock()

	select {
	case <-running:
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !s.known {
		return nil
	}
	return s.err
}

// probe runs one probe of host, bounded by the timeout and detached from any admission's
// context (a cancelled request must not cut short the probe others wait for), and records it.
func (p *RegistryProbe) probe(host string, s *hostState, done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	err := p.get(ctx, host)
	p.mu.Lock()
	s.known, s.checked, s.err, s.running = true, p.now(), err, nil
	p.mu.Unlock()
	close(done)
}

// get asks host for /v2/ over HTTPS and, if the host speaks plain HTTP (a registry on
// loopback, a kind cluster's), over HTTP.
func (p *RegistryProbe) get(ctx context.Context, host string) error {
	endpoint := host
	if host == imageref.DockerHub {
		endpoint = dockerHubEndpoint
	}
	err := p.getURL(ctx, "https://"+endpoint+"/v2/")
	if errors.Is(err, http.ErrSchemeMismatch) {
		err = p.getURL(ctx, "http://"+endpoint+"/v2/")
	}
	return err
}

func (p *RegistryProbe) getURL(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probing %s: %w", url, err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		var unverified *tls.CertificateVerificationError
		if errors.As(err, &unverified) {
			// It answered, with a certificate signed by a CA the nodes may trust and the
			// agent does not: not ours to call down.
			return nil
		}
		if errors.Is(err, http.ErrSchemeMismatch) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("probing %s: no answer within %s", url, p.timeout)
		}
		return fmt.Errorf("probing %s: %w", url, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode >= http.StatusInternalServerError {
		return fmt.Errorf("probing %s: answered %s", url, resp.Status)
	}
	return nil
}
