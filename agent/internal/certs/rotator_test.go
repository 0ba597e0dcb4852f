package certs

import (
	"context"
	"crypto/x509"
	"net"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func setup(t *testing.T) (client.Client, *clock, func() *Rotator) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(
		&admissionregistrationv1.ValidatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: "v"},
			Webhooks:   []admissionregistrationv1.ValidatingWebhook{{Name: "a.example.com"}, {Name: "b.example.com"}},
		},
		&admissionregistrationv1.MutatingWebhookConfiguration{
			ObjectMeta: metav1.ObjectMeta{Name: "m"},
			Webhooks:   []admissionregistrationv1.MutatingWebhook{{Name: "c.example.com"}},
		},
	).Build()
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	newRotator := func() *Rotator {
		r, err := New(Options{
			Client: c, Namespace: "ns", SecretName: "certs", Service: "svc",
			IPAddresses:        []net.IP{net.ParseIP("127.0.0.1")},
			ValidatingWebhooks: []string{"v"}, MutatingWebhooks: []string{"m"},
			CAValidity: 300 * 24 * time.Hour, ServingValidity: 30 * 24 * time.Hour,
			CAOverlap: time.Minute, Now: clk.Now,
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	return c, clk, newRotator
}

func bundles(g Gomega, c client.Client) [][]*x509.Certificate {
	ctx := context.Background()
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	g.Expect(c.Get(ctx, client.ObjectKey{Name: "v"}, v)).To(Succeed())
	m := &admissionregistrationv1.MutatingWebhookConfiguration{}
	g.Expect(c.Get(ctx, client.ObjectKey{Name: "m"}, m)).To(Succeed())
	var out [][]*x509.Certificate
	for _, b := range [][]byte{v.Webhooks[0].ClientConfig.CABundle, v.Webhooks[1].ClientConfig.CABundle, m.Webhooks[0].ClientConfig.CABundle} {
		certs, err := parseCerts(b)
		g.Expect(err).NotTo(HaveOccurred())
		out = append(out, certs)
	}
	return out
}

// verifies reports whether the served certificate verifies against every injected bundle, as
// an API server reconnecting at that moment would check it.
func verifies(g Gomega, c client.Client, r *Rotator, now time.Time) {
	for _, b := range bundles(g, c) {
		pool := x509.NewCertPool()
		for _, ca := range b {
			pool.AddCert(ca)
		}
		_, err := r.Current().Verify(x509.VerifyOptions{Roots: pool, DNSName: "svc.ns.svc", CurrentTime: now})
		g.Expect(err).NotTo(HaveOccurred())
	}
}

func TestRotator_createsInjectsAndServes(t *testing.T) {
	g := NewWithT(t)
	c, clk, newRotator := setup(t)
	r := newRotator()
	g.Expect(r.Ensure(context.Background())).To(Succeed())
	g.Expect(r.Current()).NotTo(BeNil())
	g.Expect(r.Current().DNSNames).To(ContainElements("svc.ns.svc", "svc", "svc.ns.svc.cluster.local"))
	g.Expect(r.Current().IPAddresses[0].Equal(net.ParseIP("127.0.0.1"))).To(BeTrue())
	for _, b := range bundles(g, c) {
		g.Expect(b).To(HaveLen(1))
	}
	verifies(g, c, r, clk.Now())

	sec := &corev1.Secret{}
	g.Expect(c.Get(context.Background(), client.ObjectKey{Namespace: "ns", Name: "certs"}, sec)).To(Succeed())
	g.Expect(sec.Type).To(Equal(corev1.SecretTypeTLS))
	g.Expect(sec.Data).To(HaveKey(CAKey))

	// A second replica adopts the same certificate instead of minting its own.
	r2 := newRotator()
	g.Expect(r2.Ensure(context.Background())).To(Succeed())
	g.Expect(r2.Current().Equal(r.Current())).To(BeTrue())
}

func TestRotator_renewsServingUnderTheSameCA(t *testing.T) {
	g := NewWithT(t)
	c, clk, newRotator := setup(t)
	r := newRotator()
	ctx := context.Background()
	g.Expect(r.Ensure(ctx)).To(Succeed())
	first := r.Current()

	clk.Add(10 * 24 * time.Hour) // two thirds of 30 days left: not due
	g.Expect(r.Ensure(ctx)).To(Succeed())
	g.Expect(r.Current().Equal(first)).To(BeTrue())

	clk.Add(11 * 24 * time.Hour) // less than a third left: due
	g.Expect(r.Ensure(ctx)).To(Succeed())
	g.Expect(r.Current().Equal(first)).To(BeFalse())
	g.Expect(r.Current().AuthorityKeyId).To(Equal(first.AuthorityKeyId))
	verifies(g, c, r, clk.Now())
}

func TestRotator_movesToANewCAOnlyAfterTheOverlap(t *testing.T) {
	g := NewWithT(t)
	c, clk, newRotator := setup(t)
	r := newRotator()
	ctx := context.Background()
	g.Expect(r.Ensure(ctx)).To(Succeed())
	oldCA := bundles(g, c)[0][0]
	first := r.Current()

	r.Rotate(true)
	g.Expect(r.Ensure(ctx)).To(Succeed())
	for _, b := range bundles(g, c) {
		g.Expect(b).To(HaveLen(2), "new CA added beside the old")
		g.Expect(b[1].Equal(oldCA)).To(BeTrue())
	}
	g.Expect(r.Current().Equal(first)).To(BeTrue(), "serving stays under the old CA during the overlap")
	verifies(g, c, r, clk.Now())

	clk.Add(30 * time.Second)
	g.Expect(r.Ensure(ctx)).To(Succeed())
	g.Expect(r.Current().Equal(first)).To(BeTrue())

	clk.Add(31 * time.Second)
	g.Expect(r.Ensure(ctx)).To(Succeed())
	newCA := bundles(g, c)[0][0]
	g.Expect(r.Current().CheckSignatureFrom(newCA)).To(Succeed(), "serving moved to the new CA")
	verifies(g, c, r, clk.Now())

	// The old CA leaves the bundle once expired (the new one was made 61s after it).
	clk.now = oldCA.NotAfter.Add(time.Second)
	g.Expect(r.Ensure(ctx)).To(Succeed())
	b := bundles(g, c)[0]
	g.Expect(b).NotTo(ContainElement(Satisfy(func(x *x509.Certificate) bool { return x.Equal(oldCA) })))
	verifies(g, c, r, clk.Now())
}
