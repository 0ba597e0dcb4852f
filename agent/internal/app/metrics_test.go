package app_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/image-cloner/image-cloner/agent/internal/app"
	"github.com/image-cloner/image-cloner/internal/promrules"
	"github.com/image-cloner/image-cloner/internal/testenv"
)

// TestCertificateExpiry_certManagerDir: with --cert-manager the expiry is that of the leaf in
// --cert-dir/tls.crt as it is when scraped, so a renewal cert-manager writes shows at once. The
// agent app.New builds on a real API server is scraped; TestWebhookTLS checks the built-in
// certificates' expiry against the one the running agent serves.
func TestCertificateExpiry_certManagerDir(t *testing.T) {
	g := NewWithT(t)
	cluster := testenv.StartCluster(t, testenv.ClusterOptions{Name: "agent-certdir", CRDs: true})
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	_, err := app.New(t.Context(), app.Options{
		Config: cluster.Config, CertManager: true, CertDir: dir,
		MetricsAddr: "0", ProbeAddr: "0", SkipNameValidation: true, MetricsRegistry: reg,
	})
	g.Expect(err).NotTo(HaveOccurred())

	first := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	renewed := first.Add(60 * 24 * time.Hour)
	ca := selfSigned(t, first.Add(3650*24*time.Hour))
	steps := []struct {
		name string
		file []byte // nil: no file
		want []float64
	}{
		{name: "no certificate yet: no series, not a zero that would alert", file: nil, want: nil},
		{name: "the leaf of cert-manager's chain", file: append(selfSigned(t, first), ca...), want: []float64{float64(first.Unix())}},
		{name: "renewed in place", file: append(selfSigned(t, renewed), ca...), want: []float64{float64(renewed.Unix())}},
		{name: "unreadable", file: []byte("not a certificate"), want: nil},
	}
	for _, s := range steps {
		if s.file != nil {
			g.Expect(os.WriteFile(filepath.Join(dir, "tls.crt"), s.file, 0o600)).To(Succeed())
		}
		g.Expect(certificateExpiry(g, reg)).To(Equal(s.want), s.name)
	}
}

// selfSigned returns the PEM of a throwaway self-signed certificate expiring at notAfter.
func selfSigned(t *testing.T, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "image-cloner-agent-webhook"},
		NotBefore: notAfter.Add(-24 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestMetrics_rulesUseExportedMetrics builds the agent as main.go does, with a registry that
// records what it registers, and checks deploy/monitoring's agent rules and their promtool
// tests' input series against what it exports; each metric they use, renamed, must fail it.
func TestMetrics_rulesUseExportedMetrics(t *testing.T) {
	g := NewWithT(t)
	cluster := testenv.StartCluster(t, testenv.ClusterOptions{Name: "agent-metrics", CRDs: true})
	rec := &promrules.Recorder{Next: prometheus.NewRegistry()}
	_, err := app.New(t.Context(), app.Options{
		Config: cluster.Config, MetricsAddr: "0", ProbeAddr: "0", SkipNameValidation: true, MetricsRegistry: rec,
	})
	g.Expect(err).NotTo(HaveOccurred())
	c, err := promrules.LoadComponent(rec, ctrlmetrics.Registry, "agent")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.Problems()).To(BeEmpty())

	// The control: a renamed metric is caught in the rules and in the unit tests' series.
	const expiry = "image_cloner_webhook_certificate_expiry_timestamp_seconds"
	problems := c.Without(expiry).Problems()
	notExported := ContainSubstring("metric " + expiry + " is not exported")
	g.Expect(problems).To(ContainElement(And(HavePrefix("group "), notExported)), "in the rules")
	g.Expect(problems).To(ContainElement(And(HavePrefix("input series "), notExported)), "in the tests' series")
}
