package clusters

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// WatchedKinds returns an empty object of every kind whose images the hub discovers: the
// workload kinds the agent patches, and Pods, whatever owns them. Pods are what runs: a Pod made
// by an operator from a custom resource, a bare Pod, or a sidecar a webhook injected never shows
// in a workload's template.
func WatchedKinds() []client.Object {
	return append(workload.Kinds(), &corev1.Pod{})
}

// keptPodLabels are the only labels a cached Pod keeps: the opt-out label, and the
// pod-template-hash a Deployment's ReplicaSet sets, which names the Deployment that owns the
// ReplicaSet (<deployment>-<hash>), so an opted-out Deployment's Pods can be recognised without
// caching ReplicaSets.
var keptPodLabels = []string{v1alpha1.IgnoreLabel, appsv1.DefaultDeploymentUniqueLabelKey}

// keptPodAnnotations are the only annotations a cached Pod keeps: the originals the agent's Pod
// webhook records when it points a Pod at backups, so a rewritten Pod still counts as using its
// source.
var keptPodAnnotations = []string{workload.OriginalImagesAnnotation}

// ProjectPod is the member caches' transform for Pods: it keeps only what the hub reads, so a
// cached Pod costs a few hundred bytes instead of kilobytes (see BenchmarkCachedPod). A
// member's Pods outnumber its workloads many times over, and the hub holds every member's.
//
// It keeps the name, namespace, UID, resourceVersion, owner references, the labels and
// annotations in keptPodLabels and keptPodAnnotations, the name and image of every container
// (init, regular, ephemeral), the Pod's phase, and of every container status its name, image,
// imageID and whether it is running (not since when), for the coverage figures. Everything else
// goes, managed fields included. Reading a dropped field from the cache finds its zero value,
// so the hub must read nothing else of a Pod (TestProjectPod_keepsOnlyWhatTheHubReads lists
// what is kept).
//
// It is idempotent, as client-go asks of a transform, and passes anything but a *corev1.Pod
// through unchanged (a tombstone, for one).
func ProjectPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{
		TypeMeta: p.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:            p.Name,
			Namespace:       p.Namespace,
			UID:             p.UID,
			ResourceVersion: p.ResourceVersion,
			OwnerReferences: p.OwnerReferences,
			Labels:          keep(p.Labels, keptPodLabels),
			Annotations:     keep(p.Annotations, keptPodAnnotations),
		},
		Status: corev1.PodStatus{
			Phase:                      p.Status.Phase,
			InitContainerStatuses:      projectStatuses(p.Status.InitContainerStatuses),
			ContainerStatuses:          projectStatuses(p.Status.ContainerStatuses),
			EphemeralContainerStatuses: projectStatuses(p.Status.EphemeralContainerStatuses),
		},
	}
	out.Spec.InitContainers = projectContainers(p.Spec.InitContainers)
	out.Spec.Containers = projectContainers(p.Spec.Containers)
	if n := len(p.Spec.EphemeralContainers); n > 0 {
		out.Spec.EphemeralContainers = make([]corev1.EphemeralContainer, n)
		for i, c := range p.Spec.EphemeralContainers {
			out.Spec.EphemeralContainers[i].Name, out.Spec.EphemeralContainers[i].Image = c.Name, c.Image
		}
	}
	return out, nil
}

func keep(m map[string]string, keys []string) map[string]string {
	var out map[string]string
	for _, k := range keys {
		if v, ok := m[k]; ok {
			if out == nil {
				out = make(map[string]string, len(keys))
			}
			out[k] = v
		}
	}
	return out
}

func projectContainers(in []corev1.Container) []corev1.Container {
	if len(in) == 0 {
		return nil
	}
	out := make([]corev1.Container, len(in))
	for i, c := range in {
		out[i].Name, out[i].Image = c.Name, c.Image
	}
	return out
}

// running marks a running container in a projected status; its StartedAt is dropped.
var running = &corev1.ContainerStateRunning{}

func projectStatuses(in []corev1.ContainerStatus) []corev1.ContainerStatus {
	if len(in) == 0 {
		return nil
	}
	out := make([]corev1.ContainerStatus, len(in))
	for i, s := range in {
		out[i].Name, out[i].Image, out[i].ImageID = s.Name, s.Image, s.ImageID
		if s.State.Running != nil {
			// Shared by every projected status: the cache hands out deep copies, never this.
			out[i].State.Running = running
		}
	}
	return out
}
