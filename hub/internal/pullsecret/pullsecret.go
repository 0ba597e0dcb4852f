package pullsecret

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// Reconciler keeps each member's copy of the hub's pull-only credentials. Set the exported
// fields and call SetupWithManager.
type Reconciler struct {
	// Client reads the hub's pull Secret in Namespace (the manager's cached client: the hub
	// caches its own namespace only).
	Client    client.Reader
	Namespace string
	Fleet     *clusters.Fleet
	// BackoffInitial and BackoffMax bound the wait between failed attempts for one member;
	// default 2s and 5m.
	BackoffInitial, BackoffMax time.Duration

	connected chan event.TypedGenericEvent[string]
}

// SetupWithManager checks the dependencies and registers the controller "pullsecret", and the
// Reconciler as a clusters.Listener so that a member is served as soon as it connects.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.Namespace == "" || r.Fleet == nil {
		return errors.New("pullsecret.Reconciler needs Client, Namespace and Clusters")
	}
	if r.BackoffInitial == 0 {
		r.BackoffInitial = 2 * time.Second
	}
	if r.BackoffMax == 0 {
		r.BackoffMax = 5 * time.Minute
	}
	r.connected = make(chan event.TypedGenericEvent[string])
	r.Fleet.AddListener(r)
	pullSecret := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == r.Namespace && o.GetName() == v1alpha1.PullSecretName
	})
	byName := handler.TypedEnqueueRequestsFromMapFunc(func(_ context.Context, name string) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: name}}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("pullsecret").
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.allMembers), builder.WithPredicates(pullSecret)).
		WatchesRawSource(source.TypedChannel(r.connected, byName)).
		WithOptions(controller.Options{
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](r.BackoffInitial, r.BackoffMax),
		}).
		Complete(r)
}

func (r *Reconciler) allMembers(context.Context, client.Object) []reconcile.Request {
	var out []reconcile.Request
	for _, m := range r.Fleet.Members() {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: m.Name}})
	}
	return out
}

// Prepare implements clusters.Listener.
func (r *Reconciler) Prepare(cluster.Cluster) error { return nil }

// Connected implements clusters.Listener: the member's request is queued, without blocking the
// member's goroutine.
func (r *Reconciler) Connected(ctx context.Context, m *clusters.Member) {
	go func() {
		select {
		case r.connected <- event.TypedGenericEvent[string]{Object: m.Name}:
		case <-ctx.Done():
		}
	}()
}

// Disconnected implements clusters.Listener.
func (r *Reconciler) Disconnected(string) {}

// Reconcile makes member req.Name hold the hub's pull-only credentials in the agent's
// namespace. Without pull credentials in the hub it leaves the member alone: it never deletes
// what someone else may have put there.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	m := r.Fleet.Member(req.Name)
	if m == nil {
		return reconcile.Result{}, nil // not connected: its connect maps onto this request again
	}
	log := ctrl.LoggerFrom(ctx).WithValues("cluster", m.Name)
	ctx = ctrl.LoggerInto(ctx, log)
	payload, err := r.payload(ctx)
	if err != nil || payload == nil {
		return reconcile.Result{}, err
	}
	c := m.Cluster.GetClient() // Secrets of members are read from their API server, never cached
	key := client.ObjectKey{Namespace: m.Namespace, Name: v1alpha1.PullSecretName}
	current := &corev1.Secret{}
	switch err := c.Get(ctx, key, current); {
	case apierrors.IsNotFound(err):
		current = nil
	case err != nil:
		return reconcile.Result{}, fmt.Errorf("cluster %s: getting Secret %s: %w%s", m.Name, key, err, advice(err))
	}
	return reconcile.Result{}, r.apply(ctx, m, current, desired(key, payload))
}

// payload returns the hub's pull-only credentials, nil when there are none (or they are not a
// kubernetes.io/dockerconfigjson Secret: the settings reconciler reports that).
func (r *Reconciler) payload(ctx context.Context) ([]byte, error) {
	src := &corev1.Secret{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: v1alpha1.PullSecretName}, src)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("getting the hub's pull credentials %s/%s: %w", r.Namespace, v1alpha1.PullSecretName, err)
	}
	data := src.Data[corev1.DockerConfigJsonKey]
	if src.Type != corev1.SecretTypeDockerConfigJson || len(data) == 0 {
		return nil, nil
	}
	return data, nil
}

func desired(key client.ObjectKey, payload []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: key.Namespace, Name: key.Name,
			Labels: map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue},
		},
		Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: payload},
	}
}

// apply turns current into want with one write. The Role 'hub register' grants has no create
// (RBAC cannot restrict create by name): register creates the Secret empty and the hub updates
// it; a create is only tried when it is missing, which works with broader credentials (a Cluster
// API admin kubeconfig).
func (r *Reconciler) apply(ctx context.Context, m *clusters.Member, current, want *corev1.Secret) error {
	log := ctrl.LoggerFrom(ctx)
	c := m.Cluster.GetClient()
	switch {
	case current == nil:
		log.Info("Creating the pull-only Secret in the member", "secret", klog.KObj(want))
		if err := c.Create(ctx, want); err != nil {
			return fmt.Errorf("cluster %s: creating Secret %s/%s: %w%s", m.Name, want.Namespace, want.Name, err, advice(err))
		}
	case current.Type != want.Type:
		// The type is immutable, and the hub may not delete: say what to do.
		return fmt.Errorf("cluster %s: Secret %s/%s is of type %q, not %s: delete it, and run 'hub register' again to recreate it", m.Name, want.Namespace, want.Name, current.Type, want.Type)
	case bytes.Equal(current.Data[corev1.DockerConfigJsonKey], want.Data[corev1.DockerConfigJsonKey]) && len(current.Data) == 1:
		return nil
	default:
		log.Info("Updating the pull-only Secret in the member", "secret", klog.KObj(want))
		updated := current.DeepCopy()
		updated.Data = want.Data
		updated.StringData = nil
		if err := c.Update(ctx, updated); err != nil {
			return fmt.Errorf("cluster %s: updating Secret %s/%s: %w%s", m.Name, want.Namespace, want.Name, err, advice(err))
		}
	}
	log.Info("Pull-only Secret handed to the member", "secret", klog.KObj(want))
	return nil
}

// advice says what to do about a refused or failed write.
func advice(err error) string {
	switch {
	case apierrors.IsForbidden(err):
		return " (the hub's identity may not do this there: run 'hub register --namespace' with the agent's namespace, which grants the Role image-cloner-hub-pull-credentials; retrying with backoff)"
	case apierrors.IsNotFound(err):
		return " (does the agent's namespace exist in the member? retrying with backoff)"
	default:
		return ""
	}
}
