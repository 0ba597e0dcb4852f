package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/image-cloner/image-cloner/internal/backups"
	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/imageref"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// Mutator is the mutating webhook for Pods and workloads.
type Mutator struct {
	// Reader reads namespaces and the namespace pull secret (normally the manager's cache).
	Reader client.Reader
	// Lookup decides which backup each image gets.
	Lookup *backups.Lookup
	// Policy returns the configuration in force.
	Policy backups.PolicyFunc
	// Decoder decodes the objects of requests.
	Decoder admission.Decoder
	// Backups, optional, tells whether backup registries answer. When set, a Pod is not
	// pointed at a backup registry it sees as down: those containers keep their upstream
	// image, with an admission warning, a BackupUnavailable Event and
	// image_cloner_admission_backup_unavailable_total. Workloads are rewritten regardless: the
	// patcher would point them at the backup anyway, and flipping a workload's template
	// between upstream and backup with each outage would roll its Pods every time.
	Backups *RegistryProbe
	// Recorder records the BackupUnavailable Events; optional.
	Recorder events.EventRecorder
	// APIReader, optional, reads the ReplicaSet of a Pod in REWRITE_MODE=auto, past the cache
	// (the agent caches no ReplicaSets); Reader when nil.
	APIReader client.Reader
}

// ReasonBackupUnavailable is the reason of the Warning Event recorded when Pods keep their
// upstream images because the backup registry does not answer.
const ReasonBackupUnavailable = "BackupUnavailable"

// Handle rewrites the images of the object that have a Ready backup, records the originals in
// workload.OriginalImagesAnnotation, and references the namespace's pull secret when the agent
// keeps one there. Pods are rewritten on CREATE only; workloads, in workload and auto modes, on
// CREATE and UPDATE (so re-applying a manifest keeps the backup), Jobs on CREATE only (their
// pod template is immutable). In auto mode a Pod's containers that the template of a patched
// workload declares (see patchedOwnerOf) are left as they are: the patcher's.
//
// Handle is idempotent, so the API server may call it again (reinvocationPolicy IfNeeded) after
// a later webhook added containers: what it rewrote is a backup by then, and only the added
// containers change.
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
	s, err := m.Policy(ctx)
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

	// In auto mode the containers a patched workload's template declares are the patcher's:
	// the Pod keeps them as the template says, and only the others are rewritten here.
	var owner *patchedOwner
	if pod, ok := obj.(*corev1.Pod); ok && s.AutoMode() {
		if owner, err = m.patchedOwner(ctx, ns, pod); err != nil {
			// Rewriting the whole Pod, as REWRITE_MODE=workload would, covers every image.
			logf.FromContext(ctx).Info("Rewriting the whole Pod: its owner could not be read", "pod", klog.KRef(ns, podName(req, pod)), "reason", err.Error())
			owner = nil
		}
	}
	leave := func(r workload.Ref) bool { return owner != nil && declares(owner.Template, r) }
	var images []string
	if spec, err := workload.PodSpec(obj); err == nil {
		for _, r := range workload.Refs(spec) {
			if r.Image != "" && !leave(r) && !slices.Contains(images, r.Image) {
				images = append(images, r.Image)
			}
		}
	}
	slices.Sort(images)

	targets := map[string]string{}
	for _, img := range images {
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
	var fallback []string
	if pod, ok := obj.(*corev1.Pod); ok {
		fallback = m.keepUpstreamWhereDown(ctx, req, pod, targets)
	}
	if len(targets) == 0 {
		if len(fallback) > 0 {
			return admission.Allowed("backup registry not answering").WithWarnings(fallback...), resultFallback
		}
		if owner != nil {
			return admission.Allowed("REWRITE_MODE=auto: " + owner.Kind + " " + owner.Name + "'s template is patched instead"), resultAllowed
		}
		return admission.Allowed("no image with a Ready backup to rewrite"), resultAllowed
	}
	changed, err := workload.RewriteRefs(obj, func(r workload.Ref) (string, bool) {
		if leave(r) {
			return "", false
		}
		to, ok := targets[r.Image]
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
	resp := admission.PatchResponseFromRaw(req.Object.Raw, data)
	if len(fallback) > 0 {
		return resp.WithWarnings(fallback...), resultFallback
	}
	return resp, resultMutated
}

// patchedOwner returns the patched workload that controls pod, nil when none does.
func (m *Mutator) patchedOwner(ctx context.Context, ns string, pod *corev1.Pod) (*patchedOwner, error) {
	r := m.APIReader
	if r == nil {
		r = m.Reader
	}
	return patchedOwnerOf(ctx, m.Reader, r, ns, pod)
}

// keepUpstreamWhereDown removes from targets the images whose backup registry m.Backups sees as
// down, and says so: one warning per registry, and (unless this is a dry run) a log line, an
// Event and the metric.
func (m *Mutator) keepUpstreamWhereDown(ctx context.Context, req admission.Request, pod *corev1.Pod, targets map[string]string) []string {
	if m.Backups == nil {
		return nil
	}
	byHost := map[string][]string{} // backup registry -> images that would go there
	for img, to := range targets {
		ref, err := imageref.Parse(to)
		if err != nil {
			continue // Lookup built it from a parsed reference: cannot happen
		}
		byHost[ref.Registry] = append(byHost[ref.Registry], img)
	}
	hosts := make([]string, 0, len(byHost))
	for h := range byHost {
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	var out []string
	for _, host := range hosts {
		down := m.Backups.Check(ctx, host)
		if down == nil {
			continue
		}
		imgs := byHost[host]
		slices.Sort(imgs)
		for _, img := range imgs {
			delete(targets, img)
		}
		msg := fmt.Sprintf("backup registry %s is not answering (%s): image-cloner left %s on %s upstream instead of pointing %s at the backup",
			host, oneLine(down.Error()), req.Namespace+"/"+podName(req, pod), quoteAll(imgs), pronoun(imgs))
		out = append(out, msg)
		if isDryRun(req) {
			continue
		}
		backupUnavailableTotal.WithLabelValues(host).Inc()
		logf.FromContext(ctx).Info("Keeping upstream images: backup registry not answering",
			"pod", klog.KRef(req.Namespace, podName(req, pod)), "registry", host, "images", imgs, "reason", down.Error())
		if m.Recorder != nil {
			m.Recorder.Eventf(eventTarget(req, pod), nil, corev1.EventTypeWarning, ReasonBackupUnavailable, "Admit", "%s", cut(msg, maxEventNote))
		}
	}
	return out
}

// maxEventNote is the longest note events.k8s.io accepts (1 kB).
const maxEventNote = 1024

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func quoteAll(imgs []string) string {
	q := make([]string, len(imgs))
	for i, img := range imgs {
		q[i] = strconv.Quote(img)
	}
	return strings.Join(q, ", ")
}

func pronoun(imgs []string) string {
	if len(imgs) == 1 {
		return "it"
	}
	return "them"
}

// podName names a Pod being created: its name, or its generateName followed by "*" (the API
// server has not picked the name yet when admission runs).
func podName(req admission.Request, pod *corev1.Pod) string {
	name := pod.Name
	if name == "" {
		name = req.Name
	}
	if name == "" {
		name = pod.GenerateName + "*"
	}
	return name
}

// eventTarget is what a BackupUnavailable Event is about: the Pod's controller (its
// ReplicaSet, Job, StatefulSet ...), which exists and is what `kubectl describe` is run on,
// or else the Pod itself, by name (it has no UID yet).
func eventTarget(req admission.Request, pod *corev1.Pod) *corev1.ObjectReference {
	if owner := metav1.GetControllerOfNoCopy(pod); owner != nil {
		return &corev1.ObjectReference{APIVersion: owner.APIVersion, Kind: owner.Kind, Namespace: req.Namespace, Name: owner.Name, UID: owner.UID}
	}
	name := pod.Name
	if name == "" {
		name = req.Name
	}
	if name == "" {
		name = pod.GenerateName
	}
	return &corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: req.Namespace, Name: name}
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
