package images

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
)

// leftAlone says which objects of a member count as users of no image: those in ignored
// namespaces (NAMESPACES_TO_IGNORE, kube-system, image-cloner's own), those carrying the
// opt-out label, and Pods whose owning workload carries it. Without the last, opting a
// Deployment out would not stop its images from being copied: its Pods would bring them back.
//
// It reads owners from the member's cache (the workload kinds are cached) and remembers each
// answer, so one reconcile reads a Deployment once however many Pods it has. A ReplicaSet is
// not cached: the Deployment that owns it is named by the ReplicaSet's name less the Pod's
// pod-template-hash, as the Deployment controller names it.
type leftAlone struct {
	cfg    *config.Config
	reader client.Reader
	owners map[string]bool // by kind/namespace/name: opted out
}

func newLeftAlone(cfg *config.Config, reader client.Reader) *leftAlone {
	return &leftAlone{cfg: cfg, reader: reader, owners: map[string]bool{}}
}

// is reports whether obj is left alone.
func (l *leftAlone) is(ctx context.Context, obj client.Object) (bool, error) {
	if l.cfg.Ignored(obj.GetNamespace()) || optedOut(obj) {
		return true, nil
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return false, nil
	}
	kind, name := workloadOf(pod)
	switch kind {
	case "Deployment":
		return l.owner(ctx, &appsv1.Deployment{}, pod.Namespace, name)
	case "DaemonSet":
		return l.owner(ctx, &appsv1.DaemonSet{}, pod.Namespace, name)
	case "StatefulSet":
		return l.owner(ctx, &appsv1.StatefulSet{}, pod.Namespace, name)
	case "Job":
		return l.owner(ctx, &batchv1.Job{}, pod.Namespace, name)
	}
	return false, nil
}

// owner reports whether the workload namespace/name of obj's kind, or the CronJob that owns a
// Job, opted out; a workload that is gone did not.
func (l *leftAlone) owner(ctx context.Context, obj client.Object, namespace, name string) (bool, error) {
	key := fmt.Sprintf("%T/%s/%s", obj, namespace, name)
	if out, ok := l.owners[key]; ok {
		return out, nil
	}
	err := l.reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, obj)
	if client.IgnoreNotFound(err) != nil {
		return false, fmt.Errorf("reading the owner of a Pod, %s: %w", key, err)
	}
	out := err == nil && optedOut(obj)
	if job, ok := obj.(*batchv1.Job); ok && err == nil && !out {
		if cj := metav1.GetControllerOfNoCopy(job); cj != nil && groupOf(cj.APIVersion) == batchv1.GroupName && cj.Kind == "CronJob" {
			if out, err = l.owner(ctx, &batchv1.CronJob{}, namespace, cj.Name); err != nil {
				return false, err
			}
		}
	}
	l.owners[key] = out
	return out, nil
}

func optedOut(obj client.Object) bool {
	return obj.GetLabels()[v1alpha1.IgnoreLabel] == v1alpha1.IgnoreValue
}

// groupOf is the group of apiVersion, "" for the core group.
func groupOf(apiVersion string) string {
	group, _, found := strings.Cut(apiVersion, "/")
	if !found {
		return ""
	}
	return group
}

// IndexOwner is the field index, on Pods and Jobs in a member cache, of the workload that owns
// each: "<Kind>/<name>" of a Deployment (through its ReplicaSet, named as leftAlone names it),
// DaemonSet, StatefulSet or Job for a Pod, of a CronJob for a Job. optOutChanged reads it to
// find the Pods whose images a workload's opt-out label decides.
const IndexOwner = "image-cloner.io/owner"

// ownerKey is IndexOwner's value of obj: the workload owning a Pod or Job, or none.
func ownerKey(obj client.Object) []string {
	if kind, name := workloadOf(obj); kind != "" {
		return []string{kind + "/" + name}
	}
	return nil
}

// workloadOf names the workload controlling obj, a Pod or a Job: a Deployment (through its
// ReplicaSet, named <deployment>-<pod-template-hash> by the Deployment controller, so
// ReplicaSets need not be cached), a DaemonSet, a StatefulSet, a Job or a CronJob; "" when
// none of those controls it.
func workloadOf(obj client.Object) (kind, name string) {
	owner := metav1.GetControllerOfNoCopy(obj)
	if owner == nil {
		return "", ""
	}
	switch gv, kind := groupOf(owner.APIVersion), owner.Kind; {
	case gv == appsv1.GroupName && kind == "ReplicaSet":
		hash := obj.GetLabels()[appsv1.DefaultDeploymentUniqueLabelKey]
		if name, found := strings.CutSuffix(owner.Name, "-"+hash); hash != "" && found {
			return "Deployment", name
		}
	case gv == appsv1.GroupName && (kind == "DaemonSet" || kind == "StatefulSet"),
		gv == batchv1.GroupName && (kind == "Job" || kind == "CronJob"):
		return kind, owner.Name
	}
	return "", ""
}

// optOutChanged returns the images of the Pods a workload owns (a CronJob's through its Jobs),
// read from the member cache c, when the workload's opt-out label changed between old and new:
// those Pods' images are reconciled again, since leftAlone counts or skips them by their
// owner's label. Images that only the Pods run (an injected sidecar) would otherwise wait for
// the Pods' next event. The workload's own images need no help: its update event brings them.
func optOutChanged(ctx context.Context, c client.Reader, old, new client.Object) ([]string, error) {
	if optedOut(old) == optedOut(new) {
		return nil, nil
	}
	kind := ""
	switch new.(type) {
	case *appsv1.Deployment:
		kind = "Deployment"
	case *appsv1.DaemonSet:
		kind = "DaemonSet"
	case *appsv1.StatefulSet:
		kind = "StatefulSet"
	case *batchv1.Job:
		kind = "Job"
	case *batchv1.CronJob:
		kind = "CronJob"
	default:
		return nil, nil
	}
	owners := []string{kind + "/" + new.GetName()}
	if kind == "CronJob" {
		jobs := &batchv1.JobList{}
		if err := c.List(ctx, jobs, client.InNamespace(new.GetNamespace()), client.MatchingFields{IndexOwner: owners[0]}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("listing the Jobs of CronJob %s/%s: %w", new.GetNamespace(), new.GetName(), err)
		}
		for i := range jobs.Items {
			owners = append(owners, "Job/"+jobs.Items[i].Name)
		}
	}
	var out []string
	for _, owner := range owners {
		pods := &corev1.PodList{}
		if err := c.List(ctx, pods, client.InNamespace(new.GetNamespace()), client.MatchingFields{IndexOwner: owner}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, fmt.Errorf("listing the Pods of %s in %s: %w", owner, new.GetNamespace(), err)
		}
		for i := range pods.Items {
			out = append(out, Sources(&pods.Items[i])...)
		}
	}
	return out, nil
}
