package clusters

import (
	"slices"
	"unique"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// keptLabels are the only labels a cached workload or Pod keeps: the opt-out label.
var keptLabels = []string{v1alpha1.IgnoreLabel}

// Workload is a workload as a member cache keeps it (ProjectWorkload): a type of the hub's own,
// whatever the kind, so that a cached workload costs a few hundred bytes where the typed object
// (an appsv1.Deployment is 1,208 bytes before any of its strings, most of it the pod template's
// zero fields) costs kilobytes. Its TypeMeta names the kind it came from; Events and logs use
// it.
//
// Member caches hand out Workloads for the workload kinds (workload.Kinds), so the controller-
// runtime client cannot read those kinds from them (its List and Get want the Go type the kind
// was registered with): the hub reads them through Member.CachedObjects, CachedByIndex and
// CachedGet. The hub never writes a workload; the agent patches them, from its own cache of
// whole objects.
type Workload struct {
	metav1.TypeMeta
	// Meta keeps the name, namespace, UID, resourceVersion, owner references, and the opt-out
	// label; no annotation (a small Go map costs about 300 bytes).
	Meta
	// InitContainers and Containers are the pod template's, name and image only.
	InitContainers []Container
	Containers     []Container
	// originals are the images the original-images annotation records (the agent's, when it
	// pointed the workload at backups), distinct and sorted.
	originals []unique.Handle[string]
}

// DeepCopyObject implements runtime.Object.
func (w *Workload) DeepCopyObject() runtime.Object {
	out := new(Workload)
	*out = *w
	out.Meta = w.Meta.deepCopy()
	out.InitContainers = slices.Clone(w.InitContainers)
	out.Containers = slices.Clone(w.Containers)
	out.originals = slices.Clone(w.originals)
	return out
}

// Images returns the distinct images of w's pod template, sorted, as workload.Images does of
// the typed object.
func (w *Workload) Images() []string { return imagesOf(w.InitContainers, w.Containers) }

// Originals returns the images the original-images annotation records, distinct and sorted.
func (w *Workload) Originals() []string { return values(w.originals) }

// workloadKinds are the GroupVersionKinds ProjectWorkload records, by the typed object's Go
// type (objects from a typed informer carry no TypeMeta).
func workloadKind(obj any) (schema.GroupVersionKind, bool) {
	switch obj.(type) {
	case *appsv1.Deployment:
		return appsv1.SchemeGroupVersion.WithKind("Deployment"), true
	case *appsv1.DaemonSet:
		return appsv1.SchemeGroupVersion.WithKind("DaemonSet"), true
	case *appsv1.StatefulSet:
		return appsv1.SchemeGroupVersion.WithKind("StatefulSet"), true
	case *batchv1.Job:
		return batchv1.SchemeGroupVersion.WithKind("Job"), true
	case *batchv1.CronJob:
		return batchv1.SchemeGroupVersion.WithKind("CronJob"), true
	}
	return schema.GroupVersionKind{}, false
}

// ProjectWorkload is the member caches' transform for the workload kinds (workload.Kinds): like
// ProjectPod, it keeps only what the hub reads, as a *Workload. The hub discovers images and
// never patches: the agent does, from its own cache of whole objects.
//
// It keeps the name, namespace, UID, resourceVersion, owner references (a CronJob's Jobs are
// found through them), the opt-out label, the images the original-images annotation records,
// and the name and image of every container and init container of the pod template. Everything else goes: the
// rest of the template, the selector, the status, managed fields
// (TestProjectWorkload_keepsOnlyWhatTheHubReads lists what is kept).
//
// It is idempotent and passes anything else through unchanged (a tombstone, a Pod, a
// *Workload).
func ProjectWorkload(obj any) (any, error) {
	gvk, ok := workloadKind(obj)
	if !ok {
		return obj, nil
	}
	in := obj.(client.Object)
	spec, err := workload.PodSpec(in)
	if err != nil {
		return nil, err
	}
	out := &Workload{
		Meta:           metaOf(in),
		InitContainers: containersOf(spec.InitContainers),
		Containers:     containersOf(spec.Containers),
		originals:      originalsOf(in),
	}
	out.SetGroupVersionKind(gvk)
	return out, nil
}

// projections are the member caches' ByObject options: every watched kind cached as its
// projection.
func projections() map[client.Object]cache.ByObject {
	out := map[client.Object]cache.ByObject{&corev1.Pod{}: {Transform: ProjectPod}}
	for _, k := range workload.Kinds() {
		out[k] = cache.ByObject{Transform: ProjectWorkload}
	}
	return out
}
