package clusters

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/image-cloner/image-cloner/internal/registration"
)

// Reconciler turns registration Secrets in Namespace into connections held by Fleet. It
// never waits on a member: connecting happens in the connection's own goroutine.
type Reconciler struct {
	Client    client.Client
	Namespace string
	Fleet     *Fleet
}

// SetupWithManager registers the Reconciler and the Fleet with mgr.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.Fleet == nil || r.Namespace == "" {
		return errors.New("clusters.Reconciler needs Client, Fleet and Namespace")
	}
	if err := mgr.Add(r.Fleet); err != nil {
		return err
	}
	isRegistration := predicate.NewPredicateFuncs(func(o client.Object) bool {
		s, ok := o.(*corev1.Secret)
		if !ok || s.Namespace != r.Namespace {
			return false
		}
		_, ok = registration.Matches(s)
		return ok
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("clusters").
		For(&corev1.Secret{}, builder.WithPredicates(isRegistration)).
		Complete(r)
}

// Reconcile connects, reconnects or disconnects the cluster the Secret registers.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var s corev1.Secret
	err := r.Client.Get(ctx, req.NamespacedName, &s)
	if apierrors.IsNotFound(err) {
		r.Fleet.disconnect(req.String())
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if _, ok := registration.Matches(&s); !ok || !s.DeletionTimestamp.IsZero() {
		// No longer a registration (label removed), or going away.
		r.Fleet.disconnect(req.String())
		return ctrl.Result{}, nil
	}
	reg, err := registration.Parse(&s)
	if err != nil {
		conv, _ := registration.Matches(&s)
		r.Fleet.invalid(&s, "", conv, err)
		return ctrl.Result{}, nil
	}
	if err := r.Fleet.connect(&s, reg, hash(&s, reg)); errors.Is(err, errDuplicate) {
		// Look again later: the other registration may be deleted or renamed.
		return ctrl.Result{RequeueAfter: 30 * time.Second}, nil
	}
	return ctrl.Result{}, nil
}

// hash identifies what a connection is made of: the cluster name, the agent's namespace and
// the kubeconfig's bytes. Changing any (a rotated token, a new CA, the namespace the Role was
// granted in) reconnects; a change to the Secret's other metadata does not.
func hash(s *corev1.Secret, reg *registration.Registration) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", reg.Cluster, reg.Convention, reg.Namespace)
	// Both conventions' keys: the one in use is the kubeconfig, the other is normally absent.
	for _, k := range []string{registration.KubeconfigKey, "value"} {
		fmt.Fprintf(h, "%d\x00", len(s.Data[k]))
		h.Write(s.Data[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}
