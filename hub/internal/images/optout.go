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

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
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
	cache  cached
	owners map[string]bool // by kind/namespace/name: opted out
}

// cached is what leftAlone and optOutChanged read of a member: its cache (clusters.Member's
// cached reads), whose objects are read only.
type cached interface {
	CachedGet(ctx context.Context, kind client.Object, namespace, name string) (client.Object, error)
	CachedByIndex(ctx context.Context, kind client.Object, index, value string) ([]client.Object, error)
}

func newLeftAlone(cfg *config.Config, cache cached) *leftAlone {
	return &leftAlone{cfg: cfg, cache: cache, owners: map[string]bool{}}
}

// is reports whether obj is left alone.
func (l *leftAlone) is(ctx context.Context, obj client.Object) (bool, error) {
	if l.cfg.Ignored(obj.GetNamespace()) || optedOut(obj) {
		return true, nil
	}
	if _, ok := obj.(*clusters.Pod); !ok {
		return false, nil
	}
	kind, name := workloadOf(obj)
	if kind == "" || kind == "CronJob" {
		return false, nil
	}
	return l.owner(ctx, kind, obj.GetNamespace(), name)
}

// owner reports whether the workload kind namespace/name, or the CronJob that owns a Job,
// opted out; a workload that is gone did not.
func (l *leftAlone) owner(ctx context.Context, kind, namespace, name string) (bool, error) {
	key := kind + "/" + namespace + "/" + name
	if out, ok := l.owners[key]; ok {
		return out, nil
	}
	obj, err := l.cache.CachedGet(ctx, workloadKinds[kind], namespace, name)
	if err != nil {
		return false, fmt.Errorf("reading the owner of a Pod, %s: %w", key, err)
	}
	out := obj != nil && optedOut(obj)
	if obj != nil && kind == "Job" && !out {
		if cj := metav1.GetControllerOfNoCopy(obj); cj != nil && groupOf(cj.APIVersion) == batchv1.GroupName && cj.Kind == "CronJob" {
			if out, err = l.owner(ctx, "CronJob", namespace, cj.Name); err != nil {
				return false, err
			}
		}
	}
	l.owners[key] = out
	return out, nil
}

// workloadKinds are the workload kinds by name, as workloadOf names them.
var workloadKinds = map[string]client.Object{
	"Deployment": &appsv1.Deployment{}, "DaemonSet": &appsv1.DaemonSet{}, "StatefulSet": &appsv1.StatefulSet{},
	"Job": &batchv1.Job{}, "CronJob": &batchv1.CronJob{},
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

// IndexOwner is the index (clusters.AddIndex), on Pods and Jobs in a member cache, of the
// workload that owns each: "<namespace>/<Kind>/<name>" of a Deployment (through its ReplicaSet,
// named as leftAlone names it), DaemonSet, StatefulSet or Job for a Pod, of a CronJob for a
// Job. optOutChanged reads it to find the Pods whose images a workload's opt-out label decides.
const IndexOwner = "image-cloner.io/owner"

// ownerKey is IndexOwner's value of obj: the workload owning a Pod or Job, or none.
func ownerKey(obj client.Object) []string {
	if kind, name := workloadOf(obj); kind != "" {
		return []string{ownerValue(obj.GetNamespace(), kind, name)}
	}
	return nil
}

func ownerValue(namespace, kind, name string) string {
	return namespace + "/" + kind + "/" + name
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
		if p, ok := obj.(*clusters.Pod); ok {
			hash = p.TemplateHash()
		}
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
func optOutChanged(ctx context.Context, c cached, old, new client.Object) ([]string, error) {
	if optedOut(old) == optedOut(new) {
		return nil, nil
	}
	w, ok := new.(*clusters.Workload)
	if !ok {
		return nil, nil
	}
	ns := new.GetNamespace()
	owners := []string{ownerValue(ns, w.Kind, w.Name)}
	if w.Kind == "CronJob" {
		jobs, err := c.CachedByIndex(ctx, &batchv1.Job{}, IndexOwner, owners[0])
		if err != nil {
			return nil, fmt.Errorf("listing the Jobs of CronJob %s/%s: %w", ns, w.Name, err)
		}
		for _, job := range jobs {
			owners = append(owners, ownerValue(ns, "Job", job.GetName()))
		}
	}
	var out []string
	for _, owner := range owners {
		pods, err := c.CachedByIndex(ctx, &corev1.Pod{}, IndexOwner, owner)
		if err != nil {
			return nil, fmt.Errorf("listing the Pods of %s: %w", owner, err)
		}
		for _, p := range pods {
			out = append(out, Sources(p)...)
		}
	}
	return out, nil
}
