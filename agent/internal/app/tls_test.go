package app_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/agent/internal/agenttest"
	"github.com/image-cloner/image-cloner/agent/internal/app"
	"github.com/image-cloner/image-cloner/internal/testenv"
	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// TestWebhookTLS runs the agent with its built-in certificates against a real API server and
// checks its webhook port from the outside: it answers no admission request over plain HTTP,
// a client that trusts only the system's CAs refuses its certificate (it is not a well-known
// one), it speaks TLS 1.2 and 1.3 but not 1.0 or 1.1, and before and after a rotation to a new
// CA the certificate it serves chains to the caBundle in both webhook configurations.
func TestWebhookTLS(t *testing.T) {
	g := NewWithT(t)
	root, err := testenv.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	cluster := testenv.StartCluster(t, testenv.ClusterOptions{
		Name:         "agent-tls",
		CRDs:         true,
		WebhookPaths: []string{filepath.Join(root, "deploy", "webhooks", "webhooks.yaml")},
	})
	c := cluster.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g.Expect(agenttest.EnsureNamespace(ctx, c, agentNS)).To(Succeed())
	g.Expect(c.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: agentNS, Name: apiv1.ConfigMapName},
		Data:       map[string]string{"BACKUP_REGISTRY": backupRegistry},
	})).To(Succeed())

	wh := cluster.Env.WebhookInstallOptions
	metrics := prometheus.NewRegistry()
	agent, err := app.New(ctx, app.Options{
		Config: cluster.Config, Namespace: agentNS, MetricsAddr: "0", ProbeAddr: "0", SkipNameValidation: true,
		WebhookHost: wh.LocalServingHost, WebhookPort: wh.LocalServingPort,
		CertOptions: loopbackCerts(), MetricsRegistry: metrics,
	})
	g.Expect(err).NotTo(HaveOccurred())
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- agent.Manager.Start(ctx) }()
	defer func() {
		cancel()
		<-mgrDone
	}()
	select {
	case <-agent.Certs.Ready():
	case <-time.After(time.Minute):
		t.Fatal("no serving certificate after a minute")
	}
	host := wh.LocalServingHost
	addr := net.JoinHostPort(host, fmt.Sprint(wh.LocalServingPort))
	// The server listens once the manager runs its webhook server: wait for a TLS answer.
	g.Expect(testenv.WaitFor(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		_, err := servedChain(ctx, addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) // only waits for a listener
		return err == nil, nil
	})).To(Succeed())

	t.Run("plainHTTPGetsNoAdmission", func(t *testing.T) {
		g := NewWithT(t)
		review := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x"}}`)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/validate-deployment", bytes.NewReader(review))
		g.Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return // refused outright
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		// Go's TLS server answers a plain HTTP request with a 400 of its own, before any handler.
		g.Expect(resp.StatusCode).To(Equal(http.StatusBadRequest))
		g.Expect(string(body)).To(ContainSubstring("HTTP request to an HTTPS server"))
		g.Expect(string(body)).NotTo(ContainSubstring("AdmissionReview"))
	})

	t.Run("untrustedWithoutTheCA", func(t *testing.T) {
		g := NewWithT(t)
		// System roots only: what a client that was not given the caBundle trusts.
		_, err := servedChain(ctx, addr, &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12})
		var unknown x509.UnknownAuthorityError
		g.Expect(errors.As(err, &unknown)).To(BeTrue(), "want an unknown authority error, got %v", err)
	})

	t.Run("tls12AndUpOnly", func(t *testing.T) {
		pool := bundlePool(ctx, NewWithT(t), c)
		// Control: this client does speak the old versions, to a server that accepts them, so
		// a refusal below is the agent's.
		old := httptest.NewUnstartedServer(http.NotFoundHandler())
		old.TLS = &tls.Config{MinVersion: tls.VersionTLS10} // accepting TLS 1.0 is the control
		old.StartTLS()
		defer old.Close()
		for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
			state, err := handshake(ctx, old.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v}) // a control server, not verified
			NewWithT(t).Expect(err).NotTo(HaveOccurred(), "control: %s to a server that accepts it", tls.VersionName(v))
			NewWithT(t).Expect(state.Version).To(Equal(v))
		}
		for _, tc := range []struct {
			name    string
			version uint16
			ok      bool
		}{
			{"TLS 1.0", tls.VersionTLS10, false},
			{"TLS 1.1", tls.VersionTLS11, false},
			{"TLS 1.2", tls.VersionTLS12, true},
			{"TLS 1.3", tls.VersionTLS13, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cfg := &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tc.version, MaxVersion: tc.version} // offering old versions is the test
				state, err := handshake(ctx, addr, cfg)
				if !tc.ok {
					NewWithT(t).Expect(err).To(HaveOccurred(), "the agent accepted %s", tc.name)
					return
				}
				NewWithT(t).Expect(err).NotTo(HaveOccurred())
				NewWithT(t).Expect(state.Version).To(Equal(tc.version))
			})
		}
	})

	t.Run("servedCertificateChainsToTheInjectedBundleAcrossRotation", func(t *testing.T) {
		g := NewWithT(t)
		before := expectChainsToBundles(ctx, g, c, addr, host)
		g.Expect(before.SerialNumber).To(Equal(agent.Certs.Current().SerialNumber))
		// The expiry the certificate alert reads is the served certificate's.
		g.Expect(certificateExpiry(g, metrics)).To(Equal([]float64{float64(before.NotAfter.Unix())}))
		oldCA := x509.NewCertPool()
		oldCA.AppendCertsFromPEM(bundle(ctx, g, c, &admissionregistrationv1.ValidatingWebhookConfiguration{}, app.DefaultValidatingWebhook))

		agent.Certs.Rotate(true)
		g.Expect(testenv.WaitFor(ctx, time.Minute, func(ctx context.Context) (bool, error) {
			chain, err := servedChain(ctx, addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) // reads the served certificate; verified below
			return err == nil && chain[0].Issuer.CommonName != before.Issuer.CommonName, nil
		})).To(Succeed(), "the agent never served a certificate of a new CA")
		after := expectChainsToBundles(ctx, g, c, addr, host)
		g.Expect(after.SerialNumber).NotTo(Equal(before.SerialNumber))
		g.Expect(certificateExpiry(g, metrics)).To(Equal([]float64{float64(after.NotAfter.Unix())}))
		_, err := after.Verify(x509.VerifyOptions{Roots: oldCA, DNSName: host})
		g.Expect(err).To(HaveOccurred(), "the new certificate must not chain to the old CA: the rotation changed nothing")
	})
}

// certificateExpiry returns the values of image_cloner_webhook_certificate_expiry_timestamp_seconds.
func certificateExpiry(g Gomega, reg *prometheus.Registry) []float64 {
	families, err := reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	var out []float64
	for _, f := range families {
		if f.GetName() == "image_cloner_webhook_certificate_expiry_timestamp_seconds" {
			for _, m := range f.GetMetric() {
				out = append(out, m.GetGauge().GetValue())
			}
		}
	}
	return out
}

// expectChainsToBundles dials the webhook trusting, in turn, the caBundle of each webhook
// configuration as the API server would, and returns the served certificate.
func expectChainsToBundles(ctx context.Context, g Gomega, c client.Client, addr, host string) *x509.Certificate {
	var served *x509.Certificate
	for _, cfg := range []struct {
		obj  client.Object
		name string
	}{
		{&admissionregistrationv1.ValidatingWebhookConfiguration{}, app.DefaultValidatingWebhook},
		{&admissionregistrationv1.MutatingWebhookConfiguration{}, app.DefaultMutatingWebhook},
	} {
		pool := x509.NewCertPool()
		g.Expect(pool.AppendCertsFromPEM(bundle(ctx, g, c, cfg.obj, cfg.name))).To(BeTrue(), "caBundle of %s", cfg.name)
		chain, err := servedChain(ctx, addr, &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12})
		g.Expect(err).NotTo(HaveOccurred(), "the served certificate against the caBundle of %s", cfg.name)
		served = chain[0]
	}
	return served
}

// bundle returns the caBundle of every webhook of a configuration, which must all be equal.
func bundle(ctx context.Context, g Gomega, c client.Client, obj client.Object, name string) []byte {
	g.Expect(c.Get(ctx, client.ObjectKey{Name: name}, obj)).To(Succeed())
	var bundles [][]byte
	switch o := obj.(type) {
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		for _, w := range o.Webhooks {
			bundles = append(bundles, w.ClientConfig.CABundle)
		}
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		for _, w := range o.Webhooks {
			bundles = append(bundles, w.ClientConfig.CABundle)
		}
	}
	g.Expect(bundles).NotTo(BeEmpty())
	for _, b := range bundles[1:] {
		g.Expect(b).To(Equal(bundles[0]), "every webhook of %s has the same caBundle", name)
	}
	return bundles[0]
}

func bundlePool(ctx context.Context, g Gomega, c client.Client) *x509.CertPool {
	pool := x509.NewCertPool()
	g.Expect(pool.AppendCertsFromPEM(bundle(ctx, g, c, &admissionregistrationv1.ValidatingWebhookConfiguration{}, app.DefaultValidatingWebhook))).To(BeTrue())
	return pool
}

func handshake(ctx context.Context, addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer func() { _ = conn.Close() }()
	return conn.(*tls.Conn).ConnectionState(), nil
}

// servedChain returns the certificates the server presents under cfg.
func servedChain(ctx context.Context, addr string, cfg *tls.Config) ([]*x509.Certificate, error) {
	state, err := handshake(ctx, addr, cfg)
	if err != nil {
		return nil, err
	}
	return state.PeerCertificates, nil
}
