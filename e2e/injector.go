package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/image-cloner/image-cloner/internal/testenv"
)

// Names the sidecar injector uses.
const (
	// injectedContainer is the container the injector adds, as Istio adds istio-proxy.
	injectedContainer = "proxy"
	// injectionAnnotation is the injector's stamp on each Pod it injects: a number of its own
	// per call, so a Pod is told apart from another before the API server has named it (a
	// controller's Pod has only a generateName at admission), and a second call on the same Pod
	// is seen (it arrives stamped).
	injectionAnnotation = "e2e.image-cloner.io/injection"
	// injectionLabel on a namespace, with value "on", is what the injector's namespaceSelector
	// matches: it only sees the namespaces of the spec that labels them.
	injectionLabel = "e2e.image-cloner.io/sidecar-injection"
)

// injection is what the injector saw at one call.
type injection struct {
	// Namespace is the Pod's, Member the cluster that called.
	Member, Namespace string
	// Stamped says the Pod arrived carrying a stamp already: a second call on one Pod.
	Stamped bool
	// Images are the Pod's images as they reached the injector, by container name.
	Images map[string]string
}

// sidecarInjector is another mutating webhook, as a service mesh's sidecar injector is: an
// HTTPS server run by the test process that adds container "proxy" with an upstream image to
// every Pod it is called on that lacks one, stamps it, and records each call. Its serving
// certificate is made here, signed by a CA of its own, for the address member API servers
// reach it at.
type sidecarInjector struct {
	image string
	// url is https://host:port, host being what the API servers dial.
	url string
	ca  []byte
	srv *http.Server

	mu    sync.Mutex
	calls []injection
}

// startInjector starts an injector of image listening on bind (an IP, port chosen by the
// system) and reached at host (an IP: it goes in the certificate), and stops it when t ends.
func startInjector(t testing.TB, image, bind, host string) (*sidecarInjector, error) {
	t.Helper()
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("the injector's address %q is not an IP", host)
	}
	authority, err := testenv.NewCAFor(ip)
	if err != nil {
		return nil, fmt.Errorf("making the injector's certificates: %w", err)
	}
	cert, err := tls.X509KeyPair(authority.ServerCertPEM, authority.ServerKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading the injector's serving certificate: %w", err)
	}
	ca := authority.CertPEM
	ln, err := net.Listen("tcp", net.JoinHostPort(bind, "0"))
	if err != nil {
		return nil, fmt.Errorf("listening for the injector on %s: %w", bind, err)
	}
	s := &sidecarInjector{image: image, ca: ca,
		url: "https://" + net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))}
	mux := http.NewServeMux()
	mux.HandleFunc("/inject/{member}", func(w http.ResponseWriter, r *http.Request) {
		member := r.PathValue("member")
		(&admission.Webhook{Handler: admission.HandlerFunc(func(_ context.Context, req admission.Request) admission.Response {
			return s.inject(member, req)
		})}).ServeHTTP(w, r)
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	go func() {
		if err := s.srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("the sidecar injector stopped serving: %v", err)
		}
	}()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s, nil
}

// inject adds the sidecar to a Pod that lacks it (idempotent, as real injectors are), and
// records the call.
func (s *sidecarInjector) inject(member string, req admission.Request) admission.Response {
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding the Pod: %w", err))
	}
	images := map[string]string{}
	has := false
	for _, c := range pod.Spec.Containers {
		images[c.Name] = c.Image
		has = has || c.Name == injectedContainer
	}
	s.mu.Lock()
	_, stamped := pod.Annotations[injectionAnnotation]
	s.calls = append(s.calls, injection{Member: member, Namespace: req.Namespace, Stamped: stamped, Images: images})
	n := len(s.calls)
	s.mu.Unlock()
	if has {
		return admission.Allowed("already injected")
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[injectionAnnotation] = strconv.Itoa(n)
	pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: injectedContainer, Image: s.image})
	out, err := json.Marshal(&pod)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, out)
}

// callsIn returns the calls member made for Pods of ns, in order.
func (s *sidecarInjector) callsIn(member, ns string) []injection {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []injection
	for _, c := range s.calls {
		if c.Member == member && c.Namespace == ns {
			out = append(out, c)
		}
	}
	return out
}

// call returns the call a Pod's stamp names.
func (s *sidecarInjector) call(p *corev1.Pod) (injection, error) {
	v, ok := p.Annotations[injectionAnnotation]
	if !ok {
		return injection{}, fmt.Errorf("pod %s/%s has no %s: the injector did not inject it", p.Namespace, p.Name, injectionAnnotation)
	}
	n, err := strconv.Atoi(v)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || n < 1 || n > len(s.calls) {
		return injection{}, fmt.Errorf("pod %s/%s: %s=%q names no call of the injector", p.Namespace, p.Name, injectionAnnotation, v)
	}
	return s.calls[n-1], nil
}

// register installs in k a MutatingWebhookConfiguration sending the CREATE of Pods in
// namespaces labelled injectionLabel=on to the injector, and deletes it when t ends. Its name
// sorts after image-cloner-mutating, so the API server calls it after the agent's webhook, as
// a mesh's injector often is: the sidecar then reaches the agent only when the API server
// reinvokes it (its reinvocationPolicy IfNeeded). The injector itself is never reinvoked.
// The API server reads configurations through an informer: the caller retries until the
// injector is called.
func (s *sidecarInjector) register(ctx context.Context, t testing.TB, k *Kube) {
	t.Helper()
	fail, none, never := admissionregistrationv1.Fail, admissionregistrationv1.SideEffectClassNone, admissionregistrationv1.NeverReinvocationPolicy
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "sidecar-injector-e2e-" + randomSuffix()},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "inject.sidecar.e2e.image-cloner.io",
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             &none,
			FailurePolicy:           &fail,
			ReinvocationPolicy:      &never,
			TimeoutSeconds:          ptr.To[int32](10),
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				URL: ptr.To(s.url + "/inject/" + k.Name), CABundle: s.ca},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"},
					Resources: []string{"pods"}, Scope: ptr.To(admissionregistrationv1.NamespacedScope)},
			}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{injectionLabel: "on"}},
		}},
	}
	gomega.NewWithT(t).Expect(k.Client.Create(ctx, cfg)).To(gomega.Succeed(), "registering the sidecar injector in %s", k.Name)
	t.Cleanup(func() {
		if err := k.Client.Delete(context.WithoutCancel(ctx), cfg); client.IgnoreNotFound(err) != nil {
			t.Errorf("deleting MutatingWebhookConfiguration %s in %s: %v", cfg.Name, k.Name, err)
		}
	})
}

// injectorAddresses returns where the injector listens and the address member API servers
// reach it at: in.HostAddress on all interfaces when set (API servers in containers, e.g.
// kind's, dial the host's address on their network), else loopback (local API servers).
func injectorAddresses(in FleetInput) (bind, host string) {
	if h := strings.TrimSpace(in.HostAddress); h != "" {
		return "0.0.0.0", h
	}
	return "127.0.0.1", "127.0.0.1"
}
