package patcher

import (
	"context"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/image-cloner/image-cloner/internal/backups"
	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/imageref"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// ReasonImagesPatched is the reason of the Normal event recorded on a patched workload.
const ReasonImagesPatched = "ImagesPatched"

// Reconciler patches one workload kind.
type Reconciler struct {
	// Client reads (from the cache) and writes workloads.
	Client client.Client
	// APIReader, optional, reads workloads past the cache after a conflict, so a retry sees
	// the version that won rather than the cache's possibly older one.
	APIReader client.Reader
	// Kind is an empty object of the kind reconciled, e.g. &appsv1.Deployment{}.
	Kind client.Object
	// Lookup decides which backup each image gets.
	Lookup *backups.Lookup
	// Policy returns the configuration in force.
	Policy backups.PolicyFunc
	// Recorder records the ImagesPatched events; optional.
	Recorder events.EventRecorder
}

// SetupWithManager registers the reconciler. The manager's cache must have the
// backups.SourceIndex on Kind (backups.SetupIndexes).
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.Kind == nil || r.Lookup == nil || r.Policy == nil {
		return errors.New("patcher: Client, Kind, Lookup and Policy must be set")
	}
	gvk, err := r.Client.GroupVersionKindFor(r.Kind)
	if err != nil {
		return fmt.Errorf("patcher: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("patcher-"+strings.ToLower(gvk.Kind)).
		For(r.Kind).
		Watches(&apiv1.ClonedImage{}, handler.EnqueueRequestsFromMapFunc(r.workloadsUsing)).
		// PIN_DIGEST, REWRITE_MODE or NAMESPACES_TO_IGNORE may have changed: look again.
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.allWorkloads)).
		Complete(r)
}

// workloadsUsing maps a Ready ClonedImage onto the workloads of Kind whose image is its source.
func (r *Reconciler) workloadsUsing(ctx context.Context, o client.Object) []reconcile.Request {
	ci, ok := o.(*apiv1.ClonedImage)
	if !ok || !ci.IsReady() {
		return nil
	}
	return r.requests(ctx, client.MatchingFields{backups.SourceIndex: ci.Spec.Source})
}

// allWorkloads maps the configuration ConfigMap onto every workload of Kind. Only that one
// ConfigMap is in the agent's cache (pullsecrets.CacheByObject).
func (r *Reconciler) allWorkloads(ctx context.Context, o client.Object) []reconcile.Request {
	if o.GetName() != apiv1.ConfigMapName {
		return nil
	}
	if s, err := r.Policy(ctx); err == nil && o.GetNamespace() != s.Namespace {
		return nil
	}
	return r.requests(ctx)
}

// requests lists the workloads of Kind that match opts, as reconcile requests. A map function
// cannot return an error: a failed list is logged and maps to nothing.
func (r *Reconciler) requests(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	list, err := r.newList()
	if err == nil {
		err = r.Client.List(ctx, list, opts...)
	}
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing workloads", "kind", fmt.Sprintf("%T", r.Kind))
		return nil
	}
	var out []reconcile.Request
	_ = forEach(list, func(obj client.Object) error {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
		return nil
	})
	return out
}

func (r *Reconciler) newList() (client.ObjectList, error) {
	return workload.NewList(r.Client.Scheme(), r.Kind)
}

// Reconcile rewrites the workload's images that have a Ready backup, in one Update carrying
// the resourceVersion read (optimistic concurrency), re-reading and retrying on conflict.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	s, err := r.Policy(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	if s.Ignored(req.Namespace) || s.PodMode() {
		return reconcile.Result{}, nil
	}
	var changed []workload.Ref
	var obj client.Object
	var reader client.Reader = r.Client
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj = r.Kind.DeepCopyObject().(client.Object)
		if err := reader.Get(ctx, req.NamespacedName, obj); err != nil {
			return err
		}
		if r.APIReader != nil {
			reader = r.APIReader // any further attempt follows a conflict
		}
		if obj.GetDeletionTimestamp() != nil || backups.OptedOut(obj) {
			changed = nil
			return nil
		}
		var err error
		changed, err = r.patch(ctx, s, obj)
		if err != nil || len(changed) == 0 {
			return err
		}
		return r.Client.Update(ctx, obj)
	})
	if apierrors.IsNotFound(err) {
		return reconcile.Result{}, nil
	}
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("patching %s: %w", req.NamespacedName, err)
	}
	if len(changed) > 0 {
		images := make([]string, 0, len(changed))
		for _, c := range changed {
			images = append(images, c.Key()+"="+c.Image)
		}
		if gvk, err := r.Client.GroupVersionKindFor(r.Kind); err == nil {
			containersPatchedTotal.WithLabelValues(gvk.Kind).Add(float64(len(changed)))
		}
		log.Info("Patched workload images to their backups", "workload", klog.KObj(obj), "containers", images)
		if r.Recorder != nil {
			r.Recorder.Eventf(obj, nil, corev1.EventTypeNormal, ReasonImagesPatched, "Patch",
				"Pointed %d container(s) at their backups: %s", len(changed), strings.Join(images, ", "))
		}
	}
	return reconcile.Result{}, nil
}

// patch rewrites obj in memory and reports what changed.
func (r *Reconciler) patch(ctx context.Context, s *backups.Policy, obj client.Object) ([]workload.Ref, error) {
	targets := map[string]string{}
	for _, img := range workload.Images(obj) {
		d, err := r.Lookup.Decide(ctx, s, img)
		if err != nil {
			if errors.Is(err, imageref.ErrInvalidReference) {
				continue
			}
			return nil, err
		}
		if !d.IsBackup && d.Target != "" {
			targets[img] = d.Target
		}
	}
	if len(targets) == 0 {
		return nil, nil
	}
	changed, err := workload.Rewrite(obj, func(image string) (string, bool) {
		to, ok := targets[image]
		return to, ok
	})
	if err != nil || len(changed) == 0 {
		return changed, err
	}
	if err := r.addPullSecret(ctx, obj); err != nil {
		return nil, err
	}
	return changed, nil
}

// addPullSecret references the namespace's pull secret when the agent has pull credentials to
// copy there (the pullsecrets reconciler keeps the copy).
func (r *Reconciler) addPullSecret(ctx context.Context, obj client.Object) error {
	s, err := r.Policy(ctx)
	if err != nil {
		return err
	}
	src := &corev1.Secret{}
	err = r.Client.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: apiv1.PullSecretName}, src)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("getting pull credentials: %w", err)
	}
	_, err = backups.AddPullSecret(obj)
	return err
}
