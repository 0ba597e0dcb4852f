package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// Keys of the Secret the Rotator keeps (type kubernetes.io/tls, so tools recognise it).
const (
	CAKey = "ca.key"
	// CABundleKey holds the current CA first, then older CAs not yet expired.
	CABundleKey = "ca.crt"
	// CARotatedAtAnnotation is when the current CA entered the bundle (RFC 3339, nanoseconds).
	CARotatedAtAnnotation = "image-cloner.io/ca-rotated-at"
)

// Defaults of Options.
const (
	DefaultCAValidity      = 10 * 365 * 24 * time.Hour
	DefaultServingValidity = 365 * 24 * time.Hour
	DefaultCheckInterval   = 5 * time.Minute
	DefaultCAOverlap       = 2 * time.Minute
)

// Options configure a Rotator.
type Options struct {
	// Client reads and writes the Secret and the webhook configurations. Use a client that
	// does not read through the manager's cache (the agent caches no such Secret).
	Client client.Client
	// Namespace and SecretName locate the Secret holding the CA and the serving certificate.
	Namespace, SecretName string
	// Service is the webhook Service's name; the serving certificate is valid for
	// <Service>, <Service>.<Namespace>, <Service>.<Namespace>.svc and ...svc.cluster.local.
	Service string
	// ExtraDNSNames and IPAddresses are added to the serving certificate (tests: 127.0.0.1).
	ExtraDNSNames []string
	IPAddresses   []net.IP
	// ValidatingWebhooks and MutatingWebhooks name the configurations whose every webhook
	// gets the CA bundle.
	ValidatingWebhooks, MutatingWebhooks []string
	// CAValidity defaults to DefaultCAValidity (10 years), ServingValidity to
	// DefaultServingValidity (1 year). Each is renewed when a third of its life is left.
	CAValidity, ServingValidity time.Duration
	// CheckInterval is how often Start checks the certificates and the injected bundles;
	// DefaultCheckInterval (5 minutes) when zero.
	CheckInterval time.Duration
	// CAOverlap is how long a new CA sits in the bundle before the serving certificate
	// switches to it, so every API server has seen the new bundle; DefaultCAOverlap when zero.
	CAOverlap time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Rotator keeps the webhook certificates. It is a manager.Runnable that runs on every replica.
type Rotator struct {
	opts    Options
	current atomic.Pointer[tls.Certificate]

	// Rotate requests, numbered; a pass handles those made before it started.
	mu                           sync.Mutex
	requested, requestedCA, done int

	ready     chan struct{}
	readyOnce sync.Once
}

// New checks opts and fills in defaults.
func New(opts Options) (*Rotator, error) {
	if opts.Client == nil || opts.Namespace == "" || opts.SecretName == "" || opts.Service == "" {
		return nil, errors.New("certs: Client, Namespace, SecretName and Service must be set")
	}
	if opts.CAValidity == 0 {
		opts.CAValidity = DefaultCAValidity
	}
	if opts.ServingValidity == 0 {
		opts.ServingValidity = DefaultServingValidity
	}
	if opts.CheckInterval == 0 {
		opts.CheckInterval = DefaultCheckInterval
	}
	if opts.CAOverlap == 0 {
		opts.CAOverlap = DefaultCAOverlap
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Rotator{opts: opts, ready: make(chan struct{})}, nil
}

// DNSNames returns the names the serving certificate is valid for.
func (r *Rotator) DNSNames() []string {
	s, ns := r.opts.Service, r.opts.Namespace
	return append([]string{s + "." + ns + ".svc", s, s + "." + ns, s + "." + ns + ".svc.cluster.local"}, r.opts.ExtraDNSNames...)
}

// GetCertificate serves the current serving certificate; set it as tls.Config.GetCertificate.
func (r *Rotator) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := r.current.Load()
	if c == nil {
		return nil, errors.New("no serving certificate yet")
	}
	return c, nil
}

// Ready is closed once a serving certificate is loaded.
func (r *Rotator) Ready() <-chan struct{} { return r.ready }

// Current returns the serving certificate being served, nil before the first Ensure.
func (r *Rotator) Current() *x509.Certificate {
	c := r.current.Load()
	if c == nil {
		return nil
	}
	return c.Leaf
}

// NeedLeaderElection is false: every replica serves webhooks and so needs the certificates.
func (r *Rotator) NeedLeaderElection() bool { return false }

// Start runs Ensure now and every CheckInterval until ctx ends. Errors are logged and retried.
func (r *Rotator) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("certs")
	t := time.NewTicker(r.opts.CheckInterval)
	defer t.Stop()
	for {
		if err := r.Ensure(ctx); err != nil && ctx.Err() == nil {
			log.Error(err, "Checking webhook certificates", "secret", r.opts.Namespace+"/"+r.opts.SecretName)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Rotate makes the next Ensure renew the serving certificate, and the CA too when ca is true
// (the serving certificate then moves to the new CA after CAOverlap).
func (r *Rotator) Rotate(ca bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requested++
	if ca {
		r.requestedCA = r.requested
	}
}

// Ensure does one pass: reads (or creates) the Secret, renews what is due, writes it back with
// optimistic concurrency, injects the CA bundle into the webhook configurations, and then
// serves the serving certificate.
func (r *Rotator) Ensure(ctx context.Context) error {
	r.mu.Lock()
	gen := r.requested
	force, forceCA := gen > r.done, r.requestedCA > r.done
	r.mu.Unlock()

	var m *material
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var err error
		m, err = r.reconcileSecret(ctx, force, forceCA)
		return err
	})
	if err == nil && m == nil {
		// retry.OnError reports a context error from the first attempt as nil.
		err = fmt.Errorf("checking certificates: %w", context.Cause(ctx))
	}
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.done = max(r.done, gen)
	r.mu.Unlock()

	cert, err := tls.X509KeyPair(m.serving.CertPEM, m.serving.KeyPEM)
	if err != nil {
		return fmt.Errorf("loading serving certificate: %w", err)
	}
	cert.Leaf = m.serving.Cert
	if err := r.inject(ctx, m.bundle); err != nil {
		// Without the bundle injected, only a certificate from the CA already served is
		// sure to be trusted.
		if old := r.current.Load(); old != nil && bytes.Equal(old.Leaf.AuthorityKeyId, cert.Leaf.AuthorityKeyId) {
			r.current.Store(&cert)
		}
		return err
	}
	if old := r.current.Load(); old == nil || !old.Leaf.Equal(cert.Leaf) {
		logf.FromContext(ctx).WithName("certs").Info("Serving webhook certificate",
			"serial", cert.Leaf.SerialNumber.Text(16), "notAfter", cert.Leaf.NotAfter.UTC(), "issuer", cert.Leaf.Issuer.CommonName)
	}
	r.current.Store(&cert)
	r.readyOnce.Do(func() { close(r.ready) })
	return nil
}

// material is the content of the Secret.
type material struct {
	ca        *keyPair
	bundle    []byte
	serving   *keyPair
	rotatedAt time.Time
}

func (r *Rotator) reconcileSecret(ctx context.Context, force, forceCA bool) (*material, error) {
	now := r.opts.Now()
	key := client.ObjectKey{Namespace: r.opts.Namespace, Name: r.opts.SecretName}
	sec := &corev1.Secret{}
	err := r.opts.Client.Get(ctx, key, sec)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("getting Secret %s: %w", key, err)
	}

	m := &material{}
	if exists {
		m.ca, _ = parseKeyPair(firstCert(sec.Data[CABundleKey]), sec.Data[CAKey])
		m.serving, _ = parseKeyPair(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey])
		m.rotatedAt, _ = time.Parse(time.RFC3339Nano, sec.Annotations[CARotatedAtAnnotation])
	}
	var bundle []*x509.Certificate
	if exists {
		bundle, _ = parseCerts(sec.Data[CABundleKey])
	}
	changed := false

	if m.ca == nil || forceCA || due(m.ca.Cert, now) || !m.ca.Cert.IsCA {
		ca, err := newCA(r.opts.Service, now, r.opts.CAValidity)
		if err != nil {
			return nil, err
		}
		m.ca, m.rotatedAt, changed = ca, now, true
		bundle = append([]*x509.Certificate{ca.Cert}, bundle...)
	}
	// Keep the older CAs that still vouch for something; drop the expired and duplicates.
	var kept []*x509.Certificate
	for _, c := range bundle {
		if now.Before(c.NotAfter) && !containsCert(kept, c) {
			kept = append(kept, c)
		}
	}
	if len(kept) != len(bundle) {
		changed = true
	}
	bundle = kept

	dns := r.DNSNames()
	servingOK := m.serving != nil && now.Before(m.serving.Cert.NotAfter) && now.After(m.serving.Cert.NotBefore) &&
		covers(m.serving.Cert, dns, r.opts.IPAddresses) && trustedBy(m.serving.Cert, bundle)
	renew := !servingOK || force || due(m.serving.Cert, now) ||
		// Move to the current CA only once the bundle with it has been out for CAOverlap.
		(!signedBy(m.serving.Cert, m.ca.Cert) && now.Sub(m.rotatedAt) >= r.opts.CAOverlap)
	if renew {
		signer := m.ca
		serving, err := newServing(signer, dns, r.opts.IPAddresses, now, r.opts.ServingValidity)
		if err != nil {
			return nil, err
		}
		// A forced or due renewal inside the overlap window stays under the CA it had, if that
		// CA is still in the bundle the API servers have seen.
		if servingOK && !signedBy(m.serving.Cert, m.ca.Cert) && now.Sub(m.rotatedAt) < r.opts.CAOverlap {
			serving = nil
		}
		if serving != nil {
			m.serving, changed = serving, true
		}
	}
	m.bundle = encodeCerts(bundle)
	if !changed && exists {
		return m, nil
	}

	if !exists {
		sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
			Namespace: key.Namespace, Name: key.Name,
			Labels: map[string]string{apiv1.ManagedByLabel: apiv1.ManagedByValue},
		}, Type: corev1.SecretTypeTLS}
	}
	if sec.Annotations == nil {
		sec.Annotations = map[string]string{}
	}
	sec.Annotations[CARotatedAtAnnotation] = m.rotatedAt.UTC().Format(time.RFC3339Nano)
	sec.Data = map[string][]byte{
		corev1.TLSCertKey:       m.serving.CertPEM,
		corev1.TLSPrivateKeyKey: m.serving.KeyPEM,
		CABundleKey:             m.bundle,
		CAKey:                   m.ca.KeyPEM,
	}
	if exists {
		err = r.opts.Client.Update(ctx, sec) // carries the resourceVersion read: conflicts retry
	} else {
		err = r.opts.Client.Create(ctx, sec)
		if apierrors.IsAlreadyExists(err) {
			// Another replica created it first: adopt its certificates.
			err = apierrors.NewConflict(corev1.Resource("secrets"), key.Name, err)
		}
	}
	if err != nil {
		return nil, err
	}
	logf.FromContext(ctx).WithName("certs").Info("Wrote webhook certificates",
		"secret", key.String(), "caNotAfter", m.ca.Cert.NotAfter.UTC(), "servingNotAfter", m.serving.Cert.NotAfter.UTC(), "bundleSize", len(bundle))
	return m, nil
}

// inject writes bundle as the caBundle of every webhook of the named configurations.
func (r *Rotator) inject(ctx context.Context, bundle []byte) error {
	var errs []error
	for _, name := range r.opts.ValidatingWebhooks {
		cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		errs = append(errs, r.injectInto(ctx, "ValidatingWebhookConfiguration", name, cfg, bundle,
			func() []*admissionregistrationv1.WebhookClientConfig {
				out := make([]*admissionregistrationv1.WebhookClientConfig, len(cfg.Webhooks))
				for i := range cfg.Webhooks {
					out[i] = &cfg.Webhooks[i].ClientConfig
				}
				return out
			}))
	}
	for _, name := range r.opts.MutatingWebhooks {
		cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
		errs = append(errs, r.injectInto(ctx, "MutatingWebhookConfiguration", name, cfg, bundle,
			func() []*admissionregistrationv1.WebhookClientConfig {
				out := make([]*admissionregistrationv1.WebhookClientConfig, len(cfg.Webhooks))
				for i := range cfg.Webhooks {
					out[i] = &cfg.Webhooks[i].ClientConfig
				}
				return out
			}))
	}
	return errors.Join(errs...)
}

// injectInto reads the configuration name into obj, sets bundle on every client config that
// configs returns (pointers into obj), and updates obj if anything changed, retrying conflicts.
func (r *Rotator) injectInto(ctx context.Context, kind, name string, obj client.Object, bundle []byte,
	configs func() []*admissionregistrationv1.WebhookClientConfig) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := r.opts.Client.Get(ctx, client.ObjectKey{Name: name}, obj); err != nil {
			return err
		}
		changed := false
		for _, cc := range configs() {
			if !bytes.Equal(cc.CABundle, bundle) {
				cc.CABundle, changed = bundle, true
			}
		}
		if !changed {
			return nil
		}
		return r.opts.Client.Update(ctx, obj)
	})
	if err != nil {
		return fmt.Errorf("injecting the CA bundle into %s %s: %w", kind, name, err)
	}
	return nil
}

func firstCert(bundle []byte) []byte {
	certs, err := parseCerts(bundle)
	if err != nil || len(certs) == 0 {
		return nil
	}
	return encodeCerts(certs[:1])
}

func containsCert(list []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range list {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

func trustedBy(c *x509.Certificate, bundle []*x509.Certificate) bool {
	for _, ca := range bundle {
		if signedBy(c, ca) {
			return true
		}
	}
	return false
}
