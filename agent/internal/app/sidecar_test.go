package app_test

import (
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// sidecarInjector is a second mutating webhook, as Istio's is: an HTTPS server that adds
// container "istio-proxy" with an upstream image to every Pod that lacks it, and counts the
// calls it gets.
type sidecarInjector struct {
	server *httptest.Server
	image  string
	calls  atomic.Int64
}

const sidecarName = "istio-proxy"

func startSidecarInjector(image string) *sidecarInjector {
	s := &sidecarInjector{image: image}
	s.server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	return s
}

func (s *sidecarInjector) serve(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	body, err := io.ReadAll(r.Body)
	review := &admissionv1.AdmissionReview{}
	if err == nil {
		err = json.Unmarshal(body, review)
	}
	if err != nil || review.Request == nil {
		http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
		return
	}
	pod := &corev1.Pod{}
	resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	if err := json.Unmarshal(review.Request.Object.Raw, pod); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	injected := false
	for _, c := range pod.Spec.Containers {
		injected = injected || c.Name == sidecarName
	}
	if !injected { // idempotent, as real injectors are
		patch, _ := json.Marshal([]map[string]any{{"op": "add", "path": "/spec/containers/-",
			"value": corev1.Container{Name: sidecarName, Image: s.image}}})
		resp.Patch = patch
		resp.PatchType = ptr.To(admissionv1.PatchTypeJSONPatch)
	}
	review.Response = resp
	review.Request = nil
	_ = json.NewEncoder(w).Encode(review)
}

// configuration registers the injector for Pods of namespaces labelled sidecar-injection=on,
// named so that it sorts, and so runs, after image-cloner-mutating (as istio-sidecar-injector
// does), and never reinvoked itself.
func (s *sidecarInjector) configuration() *admissionregistrationv1.MutatingWebhookConfiguration {
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.server.Certificate().Raw})
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	never := admissionregistrationv1.NeverReinvocationPolicy
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "istio-sidecar-injector"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "sidecar-injector.example.com",
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             &none,
			FailurePolicy:           &fail,
			ReinvocationPolicy:      &never,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To(s.server.URL + "/inject"), CABundle: ca},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"sidecar-injection": "on"}},
		}},
	}
}

// mutatePodCalls is how many Pod admissions the agent's mutating webhook has handled, whatever
// their result (image_cloner_admission_requests_total{webhook="mutate",kind="Pod"}).
func mutatePodCalls() float64 {
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		return -1
	}
	var n float64
	for _, f := range families {
		if f.GetName() != "image_cloner_admission_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["webhook"] == "mutate" && labels["kind"] == "Pod" {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}
