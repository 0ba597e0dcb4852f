package images

import (
	"context"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/imageref"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// ContainerState is where a running container's image comes from, for the coverage figure:
// a backup, or upstream and why.
type ContainerState string

const (
	// FromBackup: the container runs a backup.
	FromBackup ContainerState = "backup"
	// NotCopiedYet: upstream; the image has no Ready or Failed backup yet.
	NotCopiedYet ContainerState = "not-copied-yet"
	// CopyFailed: upstream; the image's ClonedImage is Failed (Coverage.Failed says why).
	CopyFailed ContainerState = "failed"
	// IgnoredByRule: upstream on purpose: IMAGES_TO_IGNORE or REGISTRIES_TO_IGNORE.
	IgnoredByRule ContainerState = "ignored-by-rule"
	// NamespaceIgnored: upstream on purpose: the namespace is ignored.
	NamespaceIgnored ContainerState = "namespace-ignored"
	// OptedOut: upstream on purpose: the Pod or its workload carries the opt-out label.
	OptedOut ContainerState = "opted-out"
	// OwnerNotPatchable: upstream though the backup is Ready: the Pod is bare, or owned by a
	// kind the agent does not patch (a custom resource, a Job), so only the Pod webhook can
	// point it at the backup, when the Pod is next created.
	OwnerNotPatchable ContainerState = "owner-not-patchable"
	// NotPatchedYet: upstream though the backup is Ready, and the owner is patchable: the
	// agent has not patched it yet, or the Pod predates the patch.
	NotPatchedYet ContainerState = "not-patched-yet"
)

// ContainerStates are every ContainerState, in the order figures list them.
var ContainerStates = []ContainerState{FromBackup, NotCopiedYet, CopyFailed, IgnoredByRule, NamespaceIgnored, OptedOut, OwnerNotPatchable, NotPatchedYet}

// Coverage counts one member's running containers by ContainerState.
type Coverage struct {
	Cluster    string                 `json:"cluster"`
	Containers map[ContainerState]int `json:"containers"`
	// Failed counts the CopyFailed containers by their ClonedImage's Ready reason.
	Failed map[string]int `json:"failed,omitempty"`
}

// Coverage computes the coverage figure of every connected member from its cache: the
// running containers of its Running Pods (projections: clusters.ProjectPod keeps what this
// reads). It returns the members it could read, and an error naming the others.
func (r *Reconciler) Coverage(ctx context.Context) ([]Coverage, error) {
	cfg, _ := r.InForce()
	if cfg == nil {
		return nil, errors.New("the configuration is invalid: no coverage until it is fixed")
	}
	var out []Coverage
	var errs []error
	for _, m := range r.Fleet.Members() {
		c, err := coverageOf(ctx, cfg, m)
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", m.Name, err))
			continue
		}
		out = append(out, c)
	}
	return out, errors.Join(errs...)
}

func coverageOf(ctx context.Context, cfg *config.Config, m *clusters.Member) (Coverage, error) {
	cov := Coverage{Cluster: m.Name, Containers: map[ContainerState]int{}}
	c := m.Cluster.GetClient()
	pods := &corev1.PodList{}
	if err := c.List(ctx, pods); err != nil {
		return cov, fmt.Errorf("listing Pods: %w", err)
	}
	skip := newLeftAlone(cfg, c)
	images := map[string]*v1alpha1.ClonedImage{} // by ObjectName; nil when there is none
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Status.Phase != corev1.PodRunning {
			continue
		}
		spec := map[string]string{}
		for _, ref := range workload.Refs(&p.Spec) {
			spec[ref.Container] = ref.Image
		}
		left, err := skip.is(ctx, p)
		if err != nil {
			return cov, err
		}
		for _, st := range append(append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...), p.Status.EphemeralContainerStatuses...) {
			if st.State.Running == nil {
				continue
			}
			image := spec[st.Name]
			if image == "" {
				image = st.Image
			}
			state, reason, err := classify(ctx, cfg, c, images, p, image, left)
			if err != nil {
				return cov, err
			}
			cov.Containers[state]++
			if state == CopyFailed {
				if cov.Failed == nil {
					cov.Failed = map[string]int{}
				}
				cov.Failed[reason]++
			}
		}
	}
	return cov, nil
}

// classify says where a container of p running image comes from; reason is the Ready reason
// of a Failed backup.
func classify(ctx context.Context, cfg *config.Config, c client.Reader, images map[string]*v1alpha1.ClonedImage, p *corev1.Pod, image string, left bool) (ContainerState, string, error) {
	switch {
	case cfg.Ignored(p.Namespace):
		return NamespaceIgnored, "", nil
	case left:
		return OptedOut, "", nil
	}
	ref, err := imageref.Parse(image)
	if err != nil {
		return NotCopiedYet, "", nil // the kubelet could not have pulled it either
	}
	switch {
	case cfg.Namer.IsBackup(ref):
		return FromBackup, "", nil
	case cfg.RegistryIgnored(ref.Registry) || cfg.ImageIgnored(ref.String()):
		return IgnoredByRule, "", nil
	}
	name := imageref.ObjectName(ref)
	ci, seen := images[name]
	if !seen {
		ci = &v1alpha1.ClonedImage{}
		switch err := c.Get(ctx, client.ObjectKey{Name: name}, ci); {
		case err == nil:
		case client.IgnoreNotFound(err) == nil:
			ci = nil
		default:
			return "", "", fmt.Errorf("reading ClonedImage %s: %w", name, err)
		}
		images[name] = ci
	}
	switch {
	case ci == nil:
		return NotCopiedYet, "", nil
	case ci.Status.Phase == v1alpha1.PhaseFailed:
		return CopyFailed, readyReason(ci), nil
	case !ci.IsReady():
		return NotCopiedYet, "", nil
	case !patchableOwner(p):
		return OwnerNotPatchable, "", nil
	}
	return NotPatchedYet, "", nil
}

// patchableOwner reports whether p's controller is, or is made by, a kind the agent patches
// (workload.PatchableKinds): a ReplicaSet (a Deployment's), a DaemonSet or a StatefulSet.
func patchableOwner(p *corev1.Pod) bool {
	owner := metav1.GetControllerOfNoCopy(p)
	if owner == nil || groupOf(owner.APIVersion) != appsv1.GroupName {
		return false
	}
	switch owner.Kind {
	case "ReplicaSet", "DaemonSet", "StatefulSet":
		return true
	}
	return false
}
