package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/image-cloner/image-cloner/internal/backups"
	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/imageref"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// Validator is the validating webhook for workloads.
type Validator struct {
	// Client creates the Pending ClonedImages.
	Client client.Client
	// Reader reads namespaces (normally the manager's cache).
	Reader client.Reader
	// Lookup decides whether images are backed up.
	Lookup *backups.Lookup
	// Policy returns the configuration in force.
	Policy backups.PolicyFunc
	// Decoder decodes the objects of requests.
	Decoder admission.Decoder
}

// Handle admits the request when every image the object adds is backed up. On UPDATE only
// images the old object did not have are checked, so scaling a workload, or image-cloner
// patching one container of it, is never refused because of another container.
func (v *Validator) Handle(ctx context.Context, req admission.Request) admission.Response {
	resp, result := v.handle(ctx, req)
	requestsTotal.WithLabelValues("validate", req.Kind.Kind, result).Inc()
	return resp
}

func (v *Validator) handle(ctx context.Context, req admission.Request) (admission.Response, string) {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed(""), resultAllowed
	}
	obj := newObject(req)
	if obj == nil {
		return admission.Allowed("not a workload image-cloner validates"), resultExcluded
	}
	if err := v.Decoder.Decode(req, obj); err != nil {
		return admission.Errored(http.StatusBadRequest, err), resultUnjudged
	}
	s, err := v.Policy(ctx)
	if err != nil {
		return allowUnjudged(err), resultUnjudged
	}
	why, err := excluded(ctx, v.Reader, s, req.Namespace)
	if err != nil {
		return allowUnjudged(err), resultUnjudged
	}
	if why != "" {
		return admission.Allowed(why), resultExcluded
	}

	images := workload.Images(obj)
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		old := newObject(req)
		if err := v.Decoder.DecodeRaw(req.OldObject, old); err == nil {
			had := workload.Images(old)
			images = slices.DeleteFunc(images, func(img string) bool { return slices.Contains(had, img) })
		}
	}

	var problems, invalid []string
	for _, img := range images {
		d, err := v.Lookup.Decide(ctx, s, img)
		if errors.Is(err, imageref.ErrInvalidReference) {
			// Not ours to refuse (the kubelet will fail to pull it), but worth saying why it
			// will not be backed up.
			invalid = append(invalid, invalidImage(img, err))
			continue
		}
		if err != nil {
			return allowUnjudged(err), resultUnjudged
		}
		if d.BackedUp() {
			continue
		}
		problems = append(problems, v.missing(ctx, req, d))
	}
	if len(problems) == 0 {
		return admission.Allowed("every image is backed up").WithWarnings(invalid...), resultAllowed
	}
	kind := strings.ToLower(req.Kind.Kind)
	if s.Enforcing() {
		name := obj.GetName()
		if name == "" {
			name = obj.GetGenerateName() + "*"
		}
		return admission.Denied(fmt.Sprintf("image-cloner (WEBHOOK_MODE=enforce) refused %s %s/%s: %s",
			kind, req.Namespace, name, strings.Join(problems, "; "))).WithWarnings(invalid...), resultDenied
	}
	return admission.Allowed("").WithWarnings(append(problems, invalid...)...), resultWarned
}

// invalidImage says why img, which imageref refused with err, is not backed up. The image is
// quoted cut short: a container's image can be any length.
func invalidImage(img string, err error) string {
	reason := strings.TrimPrefix(err.Error(), fmt.Sprintf("%v %q: ", imageref.ErrInvalidReference, img))
	const max = 128
	quoted := strconv.Quote(img)
	if len(img) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(img[cut]) {
			cut--
		}
		quoted = strconv.Quote(img[:cut]) + "..."
	}
	return fmt.Sprintf("image %s is not a valid image reference (%s): image-cloner cannot back it up, and the kubelet will fail to pull it; fix the image", quoted, reason)
}

// missing requests a copy of d's image (unless it exists or this is a dry run) and returns the
// sentence that tells the user.
func (v *Validator) missing(ctx context.Context, req admission.Request, d backups.Decision) string {
	log := logf.FromContext(ctx)
	retry := fmt.Sprintf("retry once `kubectl get clonedimage %s` shows Ready", d.ObjectName)
	if d.Cloned != nil {
		state := string(d.Cloned.Status.Phase)
		if state == "" {
			state = string(apiv1.PhasePending)
		}
		msg := fmt.Sprintf("image %q has no backup yet: a copy has been requested (ClonedImage %s is %s", d.Image, d.ObjectName, state)
		if d.Cloned.Status.Phase == apiv1.PhaseFailed {
			if c := readyCondition(d.Cloned); c != nil && c.Message != "" {
				msg += ": " + c.Message
			}
		}
		return msg + "); " + retry
	}
	if isDryRun(req) {
		return fmt.Sprintf("image %q has no backup yet: a copy will be requested when this is applied for real (dry run); retry once it is Ready", d.Image)
	}
	ci := &apiv1.ClonedImage{
		ObjectMeta: metav1.ObjectMeta{
			Name:   d.ObjectName,
			Labels: map[string]string{apiv1.ManagedByLabel: apiv1.ManagedByValue},
		},
		Spec: apiv1.ClonedImageSpec{Source: d.Source},
	}
	if err := v.Client.Create(ctx, ci); err != nil && !apierrors.IsAlreadyExists(err) {
		log.Error(err, "Requesting a copy", "image", d.Source, "clonedImage", klog.KObj(ci))
		return fmt.Sprintf("image %q has no backup yet and requesting a copy failed (%v); retry in a moment", d.Image, err)
	}
	copiesRequestedTotal.Inc()
	log.Info("Requested a copy", "image", d.Source, "clonedImage", klog.KObj(ci),
		"workload", klog.KRef(req.Namespace, req.Name), "kind", req.Kind.Kind)
	return fmt.Sprintf("image %q has no backup yet: a copy has been requested (ClonedImage %s is Pending); %s", d.Image, d.ObjectName, retry)
}

func readyCondition(c *apiv1.ClonedImage) *metav1.Condition {
	for i := range c.Status.Conditions {
		if c.Status.Conditions[i].Type == apiv1.ReadyCondition {
			return &c.Status.Conditions[i]
		}
	}
	return nil
}
