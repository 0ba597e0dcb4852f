package images

import (
	"context"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/imageref"
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
	// kind the agent does not patch (a custom resource, a Job no CronJob made), so only the Pod webhook can
	// point it at the backup, when the Pod is next created.
	OwnerNotPatchable ContainerState = "owner-not-patchable"
	// NotPatchedYet: upstream though the backup is Ready, and the owner is patchable: the
	// agent has not patched it yet, or the Pod predates the patch (a CronJob's Job's Pod too).
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
// reads). It returns the members it could read, and an error naming the others, and the
// registered clusters that are not connected.
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
	// A registered cluster that is not connected has no cache to count: say so rather than
	// leave it out of the figure silently.
	counted := map[string]bool{}
	for _, c := range out {
		counted[c.Cluster] = true
	}
	for _, st := range r.Fleet.Snapshot() {
		if st.Cluster != "" && !counted[st.Cluster] && st.State != clusters.Connected {
			errs = append(errs, fmt.Errorf("cluster %s is %s: its containers are not counted", st.Cluster, st.State))
		}
	}
	return out, errors.Join(errs...)
}

func coverageOf(ctx context.Context, cfg *config.Config, m *clusters.Member) (Coverage, error) {
	cov := Coverage{Cluster: m.Name, Containers: map[ContainerState]int{}}
	c := m.Cluster.GetClient()
	// The cache's own objects, not copies: coverage runs at every scrape and API call, and
	// only reads them.
	pods, err := m.CachedObjects(ctx, &corev1.Pod{})
	if err != nil {
		return cov, fmt.Errorf("listing Pods: %w", err)
	}
	skip := newLeftAlone(cfg, m)
	images := map[string]*v1alpha1.ClonedImage{} // by ObjectName; nil when there is none
	for _, o := range pods {
		p, ok := o.(*clusters.Pod)
		if !ok || p.Phase != corev1.PodRunning {
			continue
		}
		left, err := skip.is(ctx, p)
		if err != nil {
			return cov, err
		}
		for _, st := range p.Statuses {
			if !st.Running {
				continue
			}
			image := p.Image(st.Name())
			if image == "" {
				image = st.Image()
			}
			state, reason, err := classify(ctx, cfg, c, m, images, p, image, left)
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
func classify(ctx context.Context, cfg *config.Config, c client.Reader, cache cached, images map[string]*v1alpha1.ClonedImage, p *clusters.Pod, image string, left bool) (ContainerState, string, error) {
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
	}
	switch patchable, err := patchableOwner(ctx, cache, p); {
	case err != nil:
		return "", "", err
	case !patchable:
		return OwnerNotPatchable, "", nil
	}
	return NotPatchedYet, "", nil
}

// patchableOwner reports whether p's controller is, or is made by, a kind the agent patches
// (workload.PatchableKinds): a ReplicaSet (a Deployment's), a DaemonSet, a StatefulSet, or a
// Job that a CronJob made (its next Jobs come from the patched CronJob; this one's Pods, from
// an unpatched template, are not patched yet). A bare Job, or one whose owner is not cached any
// more, is not patchable: only the Pod webhook can point its Pods at the backup.
func patchableOwner(ctx context.Context, c cached, p *clusters.Pod) (bool, error) {
	owner := metav1.GetControllerOfNoCopy(p)
	if owner == nil {
		return false, nil
	}
	switch group := groupOf(owner.APIVersion); {
	case group == appsv1.GroupName:
		switch owner.Kind {
		case "ReplicaSet", "DaemonSet", "StatefulSet":
			return true, nil
		}
	case group == batchv1.GroupName && owner.Kind == "Job":
		job, err := c.CachedGet(ctx, &batchv1.Job{}, p.Namespace, owner.Name)
		switch {
		case err != nil:
			return false, fmt.Errorf("reading Job %s/%s, the owner of Pod %s: %w", p.Namespace, owner.Name, p.Name, err)
		case job == nil:
			return false, nil
		}
		cj := metav1.GetControllerOfNoCopy(job)
		return cj != nil && groupOf(cj.APIVersion) == batchv1.GroupName && cj.Kind == "CronJob", nil
	}
	return false, nil
}
