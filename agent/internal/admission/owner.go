package admission

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/pkg/workload"
)

// ownerTimeout bounds the read of a Pod's ReplicaSet, well inside the webhook's 5s timeout
// (the backup registry probe may need its 2s too).
const ownerTimeout = 2 * time.Second

// patchedOwner is the workload whose pod template the patcher points at backups, for a Pod
// that one owns.
type patchedOwner struct {
	// Kind and Name name the workload (Deployment, DaemonSet or StatefulSet).
	Kind, Name string
	// Template is the pod spec the Pod was made from: its ReplicaSet's for a Deployment's Pod,
	// the DaemonSet's or StatefulSet's as cached otherwise.
	Template *corev1.PodSpec
}

// patchedOwnerOf returns the workload the patcher patches that controls pod, or nil when none
// does: no controller (a bare Pod), a Job (its template is immutable), a ReplicaSet that no
// Deployment controls, a custom resource (CloudNativePG, Tekton ...), or an owner that is gone.
// The Pod's ReplicaSet is read past the cache (r, bounded by ownerTimeout): the agent does not
// cache ReplicaSets, which outnumber Deployments by the revisions each keeps.
func patchedOwnerOf(ctx context.Context, cached, r client.Reader, ns string, pod *corev1.Pod) (*patchedOwner, error) {
	ref := metav1.GetControllerOfNoCopy(pod)
	if ref == nil {
		return nil, nil
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil || gv.Group != appsv1.GroupName {
		return nil, nil // a custom resource's, a Job's (batch), or unparsable: not ours to patch
	}
	key := client.ObjectKey{Namespace: ns, Name: ref.Name}
	switch ref.Kind {
	case "ReplicaSet":
		ctx, cancel := context.WithTimeout(ctx, ownerTimeout)
		defer cancel()
		rs := &appsv1.ReplicaSet{}
		if err := r.Get(ctx, key, rs); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, nil
			}
			return nil, fmt.Errorf("reading ReplicaSet %s/%s of the Pod: %w", ns, ref.Name, err)
		}
		if rs.UID != ref.UID {
			return nil, nil // a ReplicaSet of the same name, not the Pod's
		}
		d := metav1.GetControllerOfNoCopy(rs)
		if d == nil || d.Kind != "Deployment" || !isApps(d.APIVersion) {
			return nil, nil // a bare ReplicaSet, or an Argo Rollout's: nobody patches its template
		}
		return &patchedOwner{Kind: "Deployment", Name: d.Name, Template: &rs.Spec.Template.Spec}, nil
	case "DaemonSet", "StatefulSet":
		var obj client.Object = &appsv1.DaemonSet{}
		if ref.Kind == "StatefulSet" {
			obj = &appsv1.StatefulSet{}
		}
		if err := cached.Get(ctx, key, obj); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, nil
			}
			return nil, fmt.Errorf("reading %s %s/%s of the Pod: %w", ref.Kind, ns, ref.Name, err)
		}
		if obj.GetUID() != ref.UID {
			return nil, nil
		}
		spec, err := workload.PodSpec(obj)
		if err != nil {
			return nil, err
		}
		return &patchedOwner{Kind: ref.Kind, Name: ref.Name, Template: spec}, nil
	}
	return nil, nil
}

func isApps(apiVersion string) bool {
	gv, err := schema.ParseGroupVersion(apiVersion)
	return err == nil && gv.Group == appsv1.GroupName
}

// declares reports whether template has container r, by list and name, with r's image: a
// container the workload patch points at its backup.
func declares(template *corev1.PodSpec, r workload.Ref) bool {
	for _, t := range workload.Refs(template) {
		if t.List == r.List && t.Container == r.Container && t.Image == r.Image {
			return true
		}
	}
	return false
}
