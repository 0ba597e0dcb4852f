package clusters

import (
	"slices"
	"unique"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/pkg/workload"
)

// WatchedKinds returns an empty object of every kind whose images the hub discovers: the
// workload kinds the agent patches, and Pods, whatever owns them. Pods are what runs: a Pod made
// by an operator from a custom resource, a bare Pod, or a sidecar a webhook injected never shows
// in a workload's template.
func WatchedKinds() []client.Object {
	return append(workload.Kinds(), &corev1.Pod{})
}

// Pod is a Pod as a member cache keeps it (ProjectPod): like Workload, a type of the hub's own,
// read through the Member's cached reads. Its TypeMeta is v1 Pod.
type Pod struct {
	metav1.TypeMeta
	// Meta keeps the name, namespace, UID, resourceVersion, owner references, and the opt-out
	// label; no annotation.
	Meta
	// templateHash is the pod-template-hash label a Deployment's ReplicaSet sets (interned:
	// every Pod of the ReplicaSet has it): it names the Deployment that owns the ReplicaSet
	// (<deployment>-<hash>), so an opted-out Deployment's Pods are recognised without caching
	// ReplicaSets.
	templateHash unique.Handle[string]
	// originals are the images the original-images annotation records (the agent's Pod
	// webhook's, when it pointed the Pod at backups), distinct and sorted: a rewritten Pod
	// still counts as using its sources.
	originals []unique.Handle[string]
	// InitContainers, Containers and EphemeralContainers are the spec's, name and image only.
	InitContainers, Containers, EphemeralContainers []Container
	Phase                                           corev1.PodPhase
	// Statuses are the container statuses of every list, init containers first, then the
	// containers, then the ephemeral containers (container names are unique across a Pod's
	// lists).
	Statuses []ContainerStatus
}

// ContainerStatus is what a cached Pod keeps of a container's status: its name, image and
// imageID, interned, and whether it runs (since when is dropped).
type ContainerStatus struct {
	name, image, imageID unique.Handle[string]
	Running              bool
}

// NewContainerStatus returns the status of container name running image, imageID.
func NewContainerStatus(name, image, imageID string, running bool) ContainerStatus {
	return ContainerStatus{name: unique.Make(name), image: unique.Make(image), imageID: unique.Make(imageID), Running: running}
}

// Name is the container's name.
func (s ContainerStatus) Name() string { return s.name.Value() }

// Image is the image the kubelet reports the container runs.
func (s ContainerStatus) Image() string { return s.image.Value() }

// ImageID is the image ID the kubelet reports (the digest it pulled).
func (s ContainerStatus) ImageID() string { return s.imageID.Value() }

// DeepCopyObject implements runtime.Object.
func (p *Pod) DeepCopyObject() runtime.Object {
	out := new(Pod)
	*out = *p
	out.Meta = p.Meta.deepCopy()
	out.InitContainers = slices.Clone(p.InitContainers)
	out.Containers = slices.Clone(p.Containers)
	out.EphemeralContainers = slices.Clone(p.EphemeralContainers)
	out.Statuses = slices.Clone(p.Statuses)
	out.originals = slices.Clone(p.originals)
	return out
}

// Images returns the distinct images of p's spec, every list, sorted, as workload.Images does
// of the typed Pod.
func (p *Pod) Images() []string {
	return imagesOf(p.InitContainers, p.Containers, p.EphemeralContainers)
}

// Originals returns the images the original-images annotation records, distinct and sorted.
func (p *Pod) Originals() []string { return values(p.originals) }

// TemplateHash returns the Pod's pod-template-hash label, "" if it has none.
func (p *Pod) TemplateHash() string {
	if p.templateHash == (unique.Handle[string]{}) {
		return ""
	}
	return p.templateHash.Value()
}

// Image returns the image the spec gives the container name, of any list; "" if none.
func (p *Pod) Image(name string) string {
	for _, list := range [][]Container{p.InitContainers, p.Containers, p.EphemeralContainers} {
		for _, c := range list {
			if c.Name() == name {
				return c.Image()
			}
		}
	}
	return ""
}

// ProjectPod is the member caches' transform for Pods: it keeps only what the hub reads, as a
// *Pod, so a cached Pod costs a few hundred bytes instead of kilobytes (see
// BenchmarkInformerPods). A member's Pods outnumber its workloads many times over, and the hub
// holds every member's.
//
// It keeps the name, namespace, UID, resourceVersion, owner references, the opt-out label, the
// pod-template-hash label, the images the original-images annotation records, the name and
// image of every container
// (init, regular, ephemeral), the Pod's phase, and of every container status its name, image,
// imageID and whether it is running, for the coverage figures. Everything else goes, managed
// fields included (TestProjectPod_keepsOnlyWhatTheHubReads lists what is kept).
//
// It is idempotent, as client-go asks of a transform, and passes anything but a *corev1.Pod
// through unchanged (a tombstone, a *Pod).
func ProjectPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &Pod{
		Meta:           metaOf(p),
		templateHash:   unique.Make(p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]),
		originals:      originalsOf(p),
		InitContainers: containersOf(p.Spec.InitContainers),
		Containers:     containersOf(p.Spec.Containers),
		Phase:          corev1.PodPhase(canonical(string(p.Status.Phase))),
		Statuses:       statusesOf(p.Status.InitContainerStatuses, p.Status.ContainerStatuses, p.Status.EphemeralContainerStatuses),
	}
	out.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	if n := len(p.Spec.EphemeralContainers); n > 0 {
		out.EphemeralContainers = make([]Container, n)
		for i, c := range p.Spec.EphemeralContainers {
			out.EphemeralContainers[i] = NewContainer(c.Name, c.Image)
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

func statusesOf(lists ...[]corev1.ContainerStatus) []ContainerStatus {
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	if n == 0 {
		return nil
	}
	out := make([]ContainerStatus, 0, n)
	for _, l := range lists {
		for _, st := range l {
			out = append(out, NewContainerStatus(st.Name, st.Image, st.ImageID, st.State.Running != nil))
		}
	}
	return out
}
