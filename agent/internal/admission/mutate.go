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
}

// ReasonBackupUnavailable is the reason of the Warning Event recorded when Pods keep their
// upstream images because the backup registry does not answer.
const ReasonBackupUnavailable = "BackupUnavailable"

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
	var fallback []string
	if pod, ok := obj.(*corev1.Pod); ok {
		fallback = m.keepUpstreamWhereDown(ctx, req, pod, targets)
	}
	if len(targets) == 0 {
		if len(fallback) > 0 {
			return admission.Allowed("backup registry not answering").WithWarnings(fallback...), resultFallback
		}
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
	resp := admission.PatchResponseFromRaw(req.Object.Raw, data)
	if len(fallback) > 0 {
		return resp.WithWarnings(fallback...), resultFallback
	}
	return resp, resultMutated
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
