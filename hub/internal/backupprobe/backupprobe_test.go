package backupprobe_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/image-cloner/image-cloner/hub/internal/backupprobe"
	"github.com/image-cloner/image-cloner/internal/testenv"
)

// TestProbe_tellsWhetherTheBackupRegistryAnswers probes real distribution registries (plain
// HTTP on loopback, with htpasswd auth, over TLS) and servers that fail the ways a registry
// does, with the answer the hub must give for each.
func TestProbe_tellsWhetherTheBackupRegistryAnswers(t *testing.T) {
	plain := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "plain"})
	auth := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "auth", Auth: true})
	tlsReg := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "tls", TLS: true})
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	t.Cleanup(failing.Close)
	// A proxy in front of nothing, or a web server that is no registry.
	notARegistry := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notARegistry.Close)
	// Accepts connections and never answers: the probe's timeout must end it.
	stalled, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stalled.Close() })
	go func() {
		for {
			c, err := stalled.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	closed := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "stopped"})
	closed.Stop()

	cases := []struct {
		name      string
		registry  string
		transport http.RoundTripper
		wantHost  string
		wantErr   string // "" means up
	}{
		{name: "plain HTTP on loopback, a repository path", registry: plain.Host + "/backups", wantHost: plain.Host},
		{name: "401 without credentials is an answer", registry: auth.Host + "/acme", wantHost: auth.Host},
		{name: "TLS with the CA trusted", registry: tlsReg.Host, transport: tlsReg.Transport(), wantHost: tlsReg.Host},
		// Plain HTTP to a TLS port answers 400, which is no registry's answer either.
		{name: "TLS with a CA the hub does not trust", registry: tlsReg.Host, wantHost: tlsReg.Host, wantErr: "certificate signed by unknown authority; over plain HTTP: probing http://" + tlsReg.Host + "/v2/: answered 400 Bad Request"},
		{name: "503", registry: strings.TrimPrefix(failing.URL, "http://"), wantHost: strings.TrimPrefix(failing.URL, "http://"), wantErr: "answered 503 Service Unavailable"},
		{name: "404: not a registry", registry: strings.TrimPrefix(notARegistry.URL, "http://"), wantHost: strings.TrimPrefix(notARegistry.URL, "http://"), wantErr: "answered 404 Not Found"},
		{name: "no answer", registry: stalled.Addr().String(), wantHost: stalled.Addr().String(), wantErr: "no answer within 500ms"},
		{name: "registry stopped", registry: closed.Host, wantHost: closed.Host, wantErr: "connection refused"},
		{name: "not configured", registry: "", wantHost: ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			p := &backupprobe.Prober{
				Registry:  func() string { return c.registry },
				Transport: c.transport,
				Timeout:   500 * time.Millisecond,
			}
			host, err := p.Probe(context.Background())
			g.Expect(host).To(Equal(c.wantHost))
			if c.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
			} else {
				g.Expect(err).To(MatchError(ContainSubstring(c.wantErr)))
			}
		})
	}
}

// TestStart_reportsEveryProbe runs the Prober as the manager does and sees a registry go down
// and come back in its reports.
func TestStart_reportsEveryProbe(t *testing.T) {
	g := NewWithT(t)
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "backup"})
	reports := make(chan error, 100)
	p := &backupprobe.Prober{
		Registry: func() string { return reg.Host + "/acme" },
		Report: func(host string, err error) {
			if host == reg.Host {
				reports <- err
			}
		},
		Interval: 50 * time.Millisecond,
		Timeout:  time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Start(ctx) }()
	next := func() error {
		select {
		case err := <-reports:
			return err
		case <-time.After(time.Minute):
			t.Fatal("no report within a minute")
			return nil
		}
	}
	g.Expect(next()).To(Succeed())
	reg.Stop()
	// Reports already under way may still say up; the registry being down must show.
	g.Eventually(next).WithTimeout(time.Minute).Should(HaveOccurred())
	g.Expect(reg.Start()).To(Succeed())
	g.Eventually(next).WithTimeout(time.Minute).Should(Succeed())
	cancel()
	g.Expect(<-done).To(Succeed())
}
