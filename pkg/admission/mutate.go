package admission

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/backups"
	"github.com/image-cloner/image-cloner/pkg/imageref"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// Mutator is the mutating webhook for Pods and workloads.
type Mutator struct {
	// Reader reads namespaces and the namespace pull secret (normally the manager's cache).
	Reader client.Reader
	// Lookup decides which backup each image gets.
	Lookup *backups.Lookup
	// Settings returns the current configuration.
	Settings backups.SettingsFunc
	// Decoder decodes the objects of requests.
	Decoder admission.Decoder
}

// Handle rewrites the images of the object that have a Ready backup, records the originals in
// workload.OriginalImagesAnnotation, and references the namespace's pull secret when the agent
// keeps one there. Pods are rewritten on CREATE only; workloads, in workload mode, on CREATE
// and UPDATE (so re-applying a manifest keeps the backup), Jobs on CREATE only (their pod
// template is immutable).
func (m *Mutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	resp, result := m.handle(ctx, req)
	requestsTotal.WithLabelValues("mutate", req.Kind.Kind, result).Inc()
	return resp
}

func (m *Mutator) handle(ctx context.Context, req admission.Request) (admission.Response, string) {
	obj := newObject(req)
	if obj == nil {
		return admission.Allowed("not a kind image-cloner rewrites"), resultExcluded
	}
	_, isPod := obj.(*corev1.Pod)
	switch {
	case req.Operation == admissionv1.Create:
	case req.Operation == admissionv1.Update && !isPod && req.Kind.Kind != "Job":
	default:
		return admission.Allowed(""), resultAllowed
	}
	if err := m.Decoder.Decode(req, obj); err != nil {
		return admission.Errored(http.StatusBadRequest, err), resultUnjudged
	}
	s, err := m.Settings(ctx)
	if err != nil {
		return allowUnjudged(err), resultUnjudged
	}
	if !isPod && s.PodMode() {
		return admission.Allowed("REWRITE_MODE=pod: workloads are left as written"), resultExcluded
	}
	// The namespace of a Pod being created by a controller is in the request, not the object.
	ns := req.Namespace
	why, err := excluded(ctx, m.Reader, s, ns)
	if err != nil {
		return allowUnjudged(err), resultUnjudged
	}
	if why != "" {
		return admission.Allowed(why), resultExcluded
	}

	targets := map[string]string{}
	for _, img := range workload.Images(obj) {
		d, err := m.Lookup.Decide(ctx, s, img)
		if errors.Is(err, imageref.ErrInvalidReference) {
			continue
		}
		if err != nil {
			return allowUnjudged(err), resultUnjudged
		}
		if !d.IsBackup && d.Target != "" {
			targets[img] = d.Target
		}
	}
	if len(targets) == 0 {
		return admission.Allowed("no image with a Ready backup to rewrite"), resultAllowed
	}
	changed, err := workload.Rewrite(obj, func(image string) (string, bool) {
		to, ok := targets[image]
		return to, ok
	})
	if err != nil {
		return allowUnjudged(err), resultUnjudged
	}
	if len(changed) == 0 {
		return admission.Allowed(""), resultAllowed
	}
	if err := m.addPullSecret(ctx, ns, obj); err != nil {
		return allowUnjudged(err), resultUnjudged
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err), resultUnjudged
	}
	return admission.PatchResponseFromRaw(req.Object.Raw, data), resultMutated
}

func (m *Mutator) addPullSecret(ctx context.Context, ns string, obj client.Object) error {
	err := m.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: apiv1.NamespacePullSecretName}, &corev1.Secret{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = backups.AddPullSecret(obj)
	return err
}
