package pullsecrets

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/image-cloner/image-cloner/internal/backups"
	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// CacheByObject returns the cache settings for Secrets and ConfigMaps an agent in namespace
// needs: in namespace, only the pull credentials Secret and the configuration ConfigMap (by
// name); elsewhere only the Secrets labelled managed-by image-cloner (the copies) and no
// ConfigMap. Everything else is not cached, so the agent holds no other Secret in memory.
//
// The copies are also selected by name: RBAC cannot grant by label, but it grants list and
// watch by name (resourceNames) to requests with a metadata.name field selector, so the
// agent's ClusterRole reads only Secrets named image-cloner-pull, not every Secret.
func CacheByObject(namespace string) map[client.Object]cache.ByObject {
	managed := labels.SelectorFromSet(labels.Set{apiv1.ManagedByLabel: apiv1.ManagedByValue})
	return map[client.Object]cache.ByObject{
		&corev1.Secret{}: {Namespaces: map[string]cache.Config{
			namespace: {FieldSelector: fields.OneTermEqualSelector("metadata.name", apiv1.PullSecretName)},
			cache.AllNamespaces: {
				LabelSelector: managed,
				FieldSelector: fields.OneTermEqualSelector("metadata.name", apiv1.NamespacePullSecretName),
			},
		}},
		&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{
			namespace: {FieldSelector: fields.OneTermEqualSelector("metadata.name", apiv1.ConfigMapName)},
		}},
	}
}

// Reconciler keeps one namespace's copy of the pull credentials in line with the source.
type Reconciler struct {
	// Client reads through the cache (CacheByObject) and writes Secrets.
	Client client.Client
	// Namespace is the agent's namespace, where the source Secret lives.
	Namespace string
	// Policy says which namespaces are ignored.
	Policy backups.PolicyFunc
}

// SetupWithManager registers the reconciler: for Namespaces, with the source Secret (and the
// configuration) mapped onto every namespace, and each copy onto its own.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.Namespace == "" || r.Policy == nil {
		return errors.New("pullsecrets: Client, Namespace and Policy must be set")
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("pullsecrets").
		For(&corev1.Namespace{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.mapSecret)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.mapConfig)).
		Complete(r)
}

func (r *Reconciler) mapSecret(ctx context.Context, o client.Object) []reconcile.Request {
	switch {
	case o.GetNamespace() == r.Namespace && o.GetName() == apiv1.PullSecretName:
		return r.allNamespaces(ctx)
	case o.GetName() == apiv1.NamespacePullSecretName:
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: o.GetNamespace()}}}
	}
	return nil
}

func (r *Reconciler) mapConfig(ctx context.Context, o client.Object) []reconcile.Request {
	if o.GetNamespace() == r.Namespace && o.GetName() == apiv1.ConfigMapName {
		return r.allNamespaces(ctx)
	}
	return nil
}

func (r *Reconciler) allNamespaces(ctx context.Context) []reconcile.Request {
	var nss corev1.NamespaceList
	if err := r.Client.List(ctx, &nss); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing namespaces")
		return nil
	}
	out := make([]reconcile.Request, 0, len(nss.Items))
	for _, ns := range nss.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: ns.Name}})
	}
	return out
}

// Reconcile makes namespace req.Name hold a copy of the source exactly when the source exists
// and the namespace is not ignored.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	ns := req.Name
	s, err := r.Policy(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	namespace := &corev1.Namespace{}
	if err := r.Client.Get(ctx, client.ObjectKey{Name: ns}, namespace); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if namespace.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}

	current := &corev1.Secret{}
	err = r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: apiv1.NamespacePullSecretName}, current)
	switch {
	case apierrors.IsNotFound(err):
		current = nil
	case err != nil:
		return reconcile.Result{}, fmt.Errorf("getting %s/%s: %w", ns, apiv1.NamespacePullSecretName, err)
	}

	want, err := r.desired(ctx, s, ns)
	if err != nil {
		return reconcile.Result{}, err
	}
	return reconcile.Result{}, r.apply(ctx, current, want)
}

// desired returns the copy ns should hold, nil for none.
func (r *Reconciler) desired(ctx context.Context, s *backups.Policy, ns string) (*corev1.Secret, error) {
	if ns == r.Namespace || s.Ignored(ns) {
		return nil, nil
	}
	src := &corev1.Secret{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: apiv1.PullSecretName}, src)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("getting pull credentials %s/%s: %w", r.Namespace, apiv1.PullSecretName, err)
	}
	payload, ok := src.Data[corev1.DockerConfigJsonKey]
	if src.Type != corev1.SecretTypeDockerConfigJson || !ok {
		// Never copy anything that is not a pull credential in the expected shape.
		ctrl.LoggerFrom(ctx).Info("Not copying pull credentials: the Secret must be of type kubernetes.io/dockerconfigjson with key .dockerconfigjson",
			"secret", klog.KObj(src))
		return nil, nil
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns,
			Name:      apiv1.NamespacePullSecretName,
			Labels:    map[string]string{apiv1.ManagedByLabel: apiv1.ManagedByValue},
		},
		Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: payload},
	}, nil
}

// apply turns current into want with one write: create, update, delete or nothing. A Secret of
// that name image-cloner did not create is left alone.
func (r *Reconciler) apply(ctx context.Context, current, want *corev1.Secret) error {
	log := ctrl.LoggerFrom(ctx)
	if current != nil && current.Labels[apiv1.ManagedByLabel] != apiv1.ManagedByValue {
		return nil // not ours (and not in our cache in practice)
	}
	switch {
	case want == nil && current == nil:
		return nil
	case want == nil:
		log.Info("Deleting pull secret", "secret", klog.KObj(current))
		return client.IgnoreNotFound(r.Client.Delete(ctx, current, client.Preconditions{UID: &current.UID}))
	case current == nil:
		log.Info("Creating pull secret", "secret", klog.KObj(want))
		err := r.Client.Create(ctx, want)
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s/%s: %w (retrying once the cache has it)", want.Namespace, want.Name, err)
		}
		return err
	case current.Type != want.Type:
		// The type is immutable: replace, and create on the next reconcile (the delete event).
		log.Info("Replacing pull secret of the wrong type", "secret", klog.KObj(current))
		return client.IgnoreNotFound(r.Client.Delete(ctx, current, client.Preconditions{UID: &current.UID}))
	case sameData(current.Data, want.Data):
		return nil
	default:
		log.Info("Updating pull secret", "secret", klog.KObj(current))
		updated := current.DeepCopy()
		updated.Data = want.Data
		updated.StringData = nil
		return r.Client.Update(ctx, updated)
	}
}

func sameData(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}
