package app

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
)

// certificateExpiryDesc is the one agent metric computed here: when the webhook serving
// certificate this replica serves expires. The alert on it (deploy/monitoring) fires well before
// the API server would start failing the webhooks' TLS handshakes, which with failurePolicy
// Ignore lets every object through unjudged and unrewritten, silently.
var certificateExpiryDesc = prometheus.NewDesc("image_cloner_webhook_certificate_expiry_timestamp_seconds",
	"When the webhook serving certificate this agent serves expires (its NotAfter, Unix seconds): the built-in CA's serving certificate, or with --cert-manager the one in --cert-dir. No series before a certificate is loaded.",
	nil, nil)

// certificateExpiry reports the NotAfter of the certificate serving returns, at scrape time.
type certificateExpiry struct {
	serving func() *x509.Certificate
}

func (c certificateExpiry) Describe(ch chan<- *prometheus.Desc) { ch <- certificateExpiryDesc }

func (c certificateExpiry) Collect(ch chan<- prometheus.Metric) {
	if cert := c.serving(); cert != nil {
		ch <- prometheus.MustNewConstMetric(certificateExpiryDesc, prometheus.GaugeValue, float64(cert.NotAfter.Unix()))
	}
}

// certificateInDir returns the leaf certificate of dir/tls.crt, where cert-manager's Secret is
// mounted and from where controller-runtime's certificate watcher reloads it; nil when it cannot
// be read (the webhook server says why).
func certificateInDir(dir string) func() *x509.Certificate {
	return func() *x509.Certificate {
		data, err := os.ReadFile(filepath.Join(dir, "tls.crt"))
		if err != nil {
			return nil
		}
		for {
			var block *pem.Block
			block, data = pem.Decode(data)
			if block == nil {
				return nil
			}
			if block.Type != "CERTIFICATE" {
				continue
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil
			}
			return cert
		}
	}
}
