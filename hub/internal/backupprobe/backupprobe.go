package backupprobe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Defaults of a Prober.
const (
	DefaultInterval = 30 * time.Second
	DefaultTimeout  = 5 * time.Second
)

// Prober probes the backup registry. Registry and Report must be set; the rest has defaults.
// It is a manager.Runnable that runs on the leader only, the replica that copies.
type Prober struct {
	// Registry returns the backup registry as configured (BACKUP_REGISTRY, host[/path]); ""
	// while there is none, when nothing is probed.
	Registry func() string
	// Report is called with the registry host of each probe and its result: nil when the
	// registry answered.
	Report func(host string, err error)
	// Transport carries the probes; default go-containerregistry's remote.DefaultTransport, the
	// Mirror's own default. Give it the Mirror's (e.g. one trusting --registry-ca-file), so the
	// probe reaches the registry exactly as copies do.
	Transport http.RoundTripper
	// Interval between probes; default DefaultInterval (30s), a typical scrape interval.
	Interval time.Duration
	// Timeout bounds one probe, connection and answer; default DefaultTimeout (5s).
	Timeout time.Duration
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: only the leader copies, so
// only its view of the registry matters.
func (p *Prober) NeedLeaderElection() bool { return true }

// Start probes now and every Interval until ctx ends.
func (p *Prober) Start(ctx context.Context) error {
	if p.Registry == nil || p.Report == nil {
		return errors.New("backupprobe.Prober needs Registry and Report")
	}
	interval := p.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if host, err := p.Probe(ctx); host != "" && ctx.Err() == nil {
			p.Report(host, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Probe probes the registry once and returns its host and the result: nil when it answered.
// The host is "" when no registry is configured (or it cannot be parsed: the configuration's
// own check says so), and nothing was probed.
//
// The registry is up when it answers /v2/ as go-containerregistry's own check (its ping, before
// every copy) requires: 200, or 401 since the probe brings no credentials (they are the copies'
// business, and their failures say AuthenticationFailed). It is down when it cannot be reached,
// its certificate is not trusted (the hub could not copy there either), it does not answer
// within the timeout, or it answers anything else (5xx, a proxy's 403 or 404 ...). Like
// go-containerregistry, it follows redirects and tries HTTPS, then plain HTTP for the hosts it
// allows HTTP to (localhost, loopback and private addresses, *.local).
func (p *Prober) Probe(ctx context.Context) (host string, err error) {
	configured := strings.TrimSpace(p.Registry())
	if configured == "" {
		return "", nil
	}
	reg, err := name.NewRegistry(strings.SplitN(configured, "/", 2)[0])
	if err != nil {
		return "", nil
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := p.Transport
	if t == nil {
		t = remote.DefaultTransport
	}
	c := &http.Client{Transport: t}
	err = get(ctx, c, "https://"+reg.RegistryStr()+"/v2/")
	if err != nil && reg.Scheme() == "http" {
		if httpErr := get(ctx, c, "http://"+reg.RegistryStr()+"/v2/"); httpErr == nil {
			err = nil
		} else {
			err = fmt.Errorf("%w; over plain HTTP: %w", err, httpErr)
		}
	}
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("probing %s: no answer within %s", reg.RegistryStr(), timeout)
	}
	return reg.RegistryStr(), err
}

func get(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probing %s: %w", url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("probing %s: %w", url, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("probing %s: answered %s", url, resp.Status)
	}
	return nil
}
