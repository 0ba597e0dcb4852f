package clusters

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// keptWorkloadLabels are the only labels a cached workload keeps: the opt-out label.
var keptWorkloadLabels = []string{v1alpha1.IgnoreLabel}

// ProjectWorkload is the member caches' transform for the workload kinds (workload.Kinds): like
// ProjectPod, it keeps only what the hub reads. The hub discovers images and never patches: the
// agent does, from its own cache of whole objects.
//
// It keeps the name, namespace, UID, resourceVersion, owner references (a CronJob's Jobs are
// found through them), the opt-out label, the original-images annotation, and the name and
// image of every container and init container of the pod template. Everything else goes: the
// rest of the template, the selector, the status, managed fields. Reading a dropped field from
// the cache finds its zero value (TestProjectWorkload_keepsOnlyWhatTheHubReads lists what is
// kept).
//
// It is idempotent and passes anything else through unchanged (a tombstone, a Pod).
func ProjectWorkload(obj any) (any, error) {
	var out client.Object
	switch obj.(type) {
	case *appsv1.Deployment:
		out = &appsv1.Deployment{}
	case *appsv1.DaemonSet:
		out = &appsv1.DaemonSet{}
	case *appsv1.StatefulSet:
		out = &appsv1.StatefulSet{}
	case *batchv1.Job:
		out = &batchv1.Job{}
	case *batchv1.CronJob:
		out = &batchv1.CronJob{}
	default:
		return obj, nil
	}
	in := obj.(client.Object)
	out.GetObjectKind().SetGroupVersionKind(in.GetObjectKind().GroupVersionKind())
	out.SetName(in.GetName())
	out.SetNamespace(in.GetNamespace())
	out.SetUID(in.GetUID())
	out.SetResourceVersion(in.GetResourceVersion())
	out.SetOwnerReferences(in.GetOwnerReferences())
	out.SetLabels(keep(in.GetLabels(), keptWorkloadLabels))
	out.SetAnnotations(keep(in.GetAnnotations(), keptPodAnnotations))
	from, err := workload.PodSpec(in)
	if err != nil {
		return nil, err
	}
	to, err := workload.PodSpec(out)
	if err != nil {
		return nil, err
	}
	to.InitContainers = projectContainers(from.InitContainers)
	to.Containers = projectContainers(from.Containers)
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
