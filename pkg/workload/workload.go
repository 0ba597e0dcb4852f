package workload

import (
	"encoding/json"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// OriginalImagesAnnotation holds, as JSON, the images a workload had before image-cloner
// rewrote them: {"<list>/<container>": "<image>"}, e.g. {"containers/web": "nginx:1.25"}.
const OriginalImagesAnnotation = "image-cloner.io/original-images"

// Container lists, as named in the pod spec.
const (
	InitContainers      = "initContainers"
	Containers          = "containers"
	EphemeralContainers = "ephemeralContainers"
)

// Kinds returns an empty object of every workload kind the hub watches and the agent patches.
func Kinds() []client.Object {
	return []client.Object{
		&appsv1.Deployment{}, &appsv1.DaemonSet{}, &appsv1.StatefulSet{}, &batchv1.Job{}, &batchv1.CronJob{},
	}
}

// PatchableKinds returns Kinds but Job, whose pod template is immutable once created: a Job's
// Pods are pointed at backups by the Pod mutating webhook, and a CronJob's future Jobs by
// patching the CronJob.
func PatchableKinds() []client.Object {
	var out []client.Object
	for _, k := range Kinds() {
		if _, job := k.(*batchv1.Job); !job {
			out = append(out, k)
		}
	}
	return out
}

// NewList returns an empty list of obj's kind, as scheme knows it: a DeploymentList for a
// Deployment.
func NewList(scheme *runtime.Scheme, obj client.Object) (client.ObjectList, error) {
	gvk, err := apiutil.GVKForObject(obj, scheme)
	if err != nil {
		return nil, err
	}
	o, err := scheme.New(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err != nil {
		return nil, err
	}
	list, ok := o.(client.ObjectList)
	if !ok {
		return nil, fmt.Errorf("%sList is not a list", gvk.Kind)
	}
	return list, nil
}

// PodSpec returns a pointer to the pod spec inside obj, so callers can read or change it in
// place, or an error for a kind this package does not know.
func PodSpec(obj client.Object) (*corev1.PodSpec, error) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Template.Spec, nil
	case *appsv1.DaemonSet:
		return &o.Spec.Template.Spec, nil
	case *appsv1.StatefulSet:
		return &o.Spec.Template.Spec, nil
	case *appsv1.ReplicaSet:
		return &o.Spec.Template.Spec, nil
	case *batchv1.Job:
		return &o.Spec.Template.Spec, nil
	case *batchv1.CronJob:
		return &o.Spec.JobTemplate.Spec.Template.Spec, nil
	case *corev1.Pod:
		return &o.Spec, nil
	default:
		return nil, fmt.Errorf("unsupported workload type %T", obj)
	}
}

// Ref is one container's image inside a pod spec.
type Ref struct {
	List      string // InitContainers, Containers or EphemeralContainers
	Container string
	Image     string
}

// Key identifies the container within its pod spec, as used in OriginalImagesAnnotation.
func (r Ref) Key() string { return r.List + "/" + r.Container }

// Refs returns every container's image in spec, init containers first.
func Refs(spec *corev1.PodSpec) []Ref {
	var out []Ref
	for _, c := range spec.InitContainers {
		out = append(out, Ref{InitContainers, c.Name, c.Image})
	}
	for _, c := range spec.Containers {
		out = append(out, Ref{Containers, c.Name, c.Image})
	}
	for _, c := range spec.EphemeralContainers {
		out = append(out, Ref{EphemeralContainers, c.Name, c.Image})
	}
	return out
}

// Images returns the distinct images of obj's pod spec, sorted; nil for an unknown kind.
func Images(obj client.Object) []string {
	spec, err := PodSpec(obj)
	if err != nil {
		return nil
	}
	var out []string
	for _, r := range Refs(spec) {
		if r.Image != "" && !slices.Contains(out, r.Image) {
			out = append(out, r.Image)
		}
	}
	slices.Sort(out)
	return out
}

// Rewrite changes, in place, every container whose image rewrite maps to a new value, and
// records each changed container's first original image in obj's OriginalImagesAnnotation
// (a second rewrite keeps the first original, so Restore always goes back to the start).
// It returns the refs it changed.
func Rewrite(obj client.Object, rewrite func(image string) (string, bool)) ([]Ref, error) {
	return RewriteRefs(obj, func(r Ref) (string, bool) { return rewrite(r.Image) })
}

// RewriteRefs is Rewrite for callers that decide per container rather than per image: rewrite
// is given each container's Ref (list, name and current image).
func RewriteRefs(obj client.Object, rewrite func(Ref) (string, bool)) ([]Ref, error) {
	spec, err := PodSpec(obj)
	if err != nil {
		return nil, err
	}
	originals, err := Originals(obj)
	if err != nil {
		return nil, err
	}
	var changed []Ref
	set := func(list string, name string, image *string) {
		r := Ref{list, name, *image}
		to, ok := rewrite(r)
		if !ok || to == *image {
			return
		}
		if _, seen := originals[r.Key()]; !seen {
			originals[r.Key()] = *image
		}
		*image = to
		changed = append(changed, r)
	}
	for i := range spec.InitContainers {
		set(InitContainers, spec.InitContainers[i].Name, &spec.InitContainers[i].Image)
	}
	for i := range spec.Containers {
		set(Containers, spec.Containers[i].Name, &spec.Containers[i].Image)
	}
	for i := range spec.EphemeralContainers {
		set(EphemeralContainers, spec.EphemeralContainers[i].Name, &spec.EphemeralContainers[i].Image)
	}
	if len(changed) > 0 {
		if err := setOriginals(obj, originals); err != nil {
			return nil, err
		}
	}
	return changed, nil
}

// Originals returns the images recorded in OriginalImagesAnnotation, keyed by Ref.Key; an
// empty map when there is none, an error when the annotation is not valid JSON.
func Originals(obj client.Object) (map[string]string, error) {
	out := map[string]string{}
	v, ok := obj.GetAnnotations()[OriginalImagesAnnotation]
	if !ok || v == "" {
		return out, nil
	}
	if err := json.Unmarshal([]byte(v), &out); err != nil {
		return nil, fmt.Errorf("annotation %s of %s/%s is not a JSON object of strings: %w",
			OriginalImagesAnnotation, obj.GetNamespace(), obj.GetName(), err)
	}
	if out == nil {
		// "null" decodes to a nil map, which Rewrite would write to.
		out = map[string]string{}
	}
	return out, nil
}

func setOriginals(obj client.Object, originals map[string]string) error {
	data, err := json.Marshal(originals)
	if err != nil {
		return fmt.Errorf("encoding original images: %w", err)
	}
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[OriginalImagesAnnotation] = string(data)
	obj.SetAnnotations(ann)
	return nil
}

// Restore puts back every image recorded in OriginalImagesAnnotation and removes the
// annotation. Containers that no longer exist are skipped. It returns the number restored.
func Restore(obj client.Object) (int, error) {
	spec, err := PodSpec(obj)
	if err != nil {
		return 0, err
	}
	originals, err := Originals(obj)
	if err != nil {
		return 0, err
	}
	if len(originals) == 0 {
		return 0, nil
	}
	n := 0
	put := func(list, name string, image *string) {
		if v, ok := originals[list+"/"+name]; ok && *image != v {
			*image = v
			n++
		}
	}
	for i := range spec.InitContainers {
		put(InitContainers, spec.InitContainers[i].Name, &spec.InitContainers[i].Image)
	}
	for i := range spec.Containers {
		put(Containers, spec.Containers[i].Name, &spec.Containers[i].Image)
	}
	for i := range spec.EphemeralContainers {
		put(EphemeralContainers, spec.EphemeralContainers[i].Name, &spec.EphemeralContainers[i].Image)
	}
	ann := obj.GetAnnotations()
	delete(ann, OriginalImagesAnnotation)
	obj.SetAnnotations(ann)
	return n, nil
}
