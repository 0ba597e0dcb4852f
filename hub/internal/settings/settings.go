// Package settings keeps the hub's configuration current: it reconciles the ConfigMap
// image-cloner-configuration and the credential Secrets of the hub's namespace into a parsed
// config.Config and a mirror.Mirror, rebuilt when the credentials, the copy bound or
// COPY_REFERRERS change. It
// validates the pull-only Secret too; hub/internal/pullsecret hands it to the members. Push
// credentials never leave the hub.
package settings

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/dockerconfig"
	"github.com/image-cloner/image-cloner/pkg/mirror"
)

// userAgent is the product token of the hub's registry requests.
const userAgent = "image-cloner"

// ReasonInvalidConfiguration is the reason of the Warning Event on the ConfigMap when it is
// invalid.
const ReasonInvalidConfiguration = "InvalidConfiguration"

// Reconciler owns the hub's configuration. It is the only reconciler of the configuration
// objects; every change maps onto its single request.
type Reconciler struct {
	Client     client.Reader
	Namespace  string
	PushSecret string
	Recorder   events.EventRecorder
	Log        logr.Logger
	// MirrorOptions are added to every Mirror built (observer, logger, transport ...).
	MirrorOptions []mirror.Option
	// OnChange is called after the configuration or the Mirror changed, e.g. to resync images.
	OnChange func(ctx context.Context)

	mu       sync.Mutex
	cfg      *config.Config
	mirror   *mirror.Mirror
	mirrorID string // what the Mirror was built from
	err      error
}

// Current returns the configuration and the Mirror in force; nil, nil until a valid
// configuration has been read. After an invalid change the last valid one stays in force.
func (r *Reconciler) Current() (*config.Config, *mirror.Mirror) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg, r.mirror
}

// Err returns what is wrong with the configuration as last read, nil when it is valid.
func (r *Reconciler) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *Reconciler) names() []string {
	return []string{v1alpha1.ConfigMapName, config.LegacyDockerConfigMapName, r.PushSecret, v1alpha1.PullSecretName}
}

// SetupWithManager registers the Reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.Namespace == "" || r.PushSecret == "" {
		return errors.New("settings.Reconciler needs Client, Namespace and PushSecret")
	}
	mine := predicate.NewPredicateFuncs(func(o client.Object) bool {
		if o.GetNamespace() != r.Namespace {
			return false
		}
		for _, n := range r.names() {
			if o.GetName() == n {
				return true
			}
		}
		return false
	})
	one := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: r.Namespace, Name: v1alpha1.ConfigMapName}}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("settings").
		Watches(&corev1.ConfigMap{}, one, builder.WithPredicates(mine)).
		Watches(&corev1.Secret{}, one, builder.WithPredicates(mine)).
		Complete(r)
}

// Reconcile reads the configuration and credentials, and applies them.
func (r *Reconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	cfg, creds, err := r.load(ctx)
	if err != nil {
		r.mu.Lock()
		changed := r.err == nil || r.err.Error() != err.Error()
		r.err = err
		r.mu.Unlock()
		if changed {
			r.Log.Error(err, "Configuration is invalid; the last valid one, if any, stays in force")
			if r.Recorder != nil {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: v1alpha1.ConfigMapName}}
				_ = r.Client.Get(ctx, client.ObjectKeyFromObject(cm), cm)
				r.Recorder.Eventf(cm, nil, corev1.EventTypeWarning, ReasonInvalidConfiguration, "Load", "%s", err.Error())
			}
		}
		return ctrl.Result{}, nil
	}
	for _, w := range append(cfg.Warnings, creds.Warnings...) {
		r.Log.Info("Configuration warning", "warning", w)
	}
	sum := sha256.Sum256(creds.Push) // what identifies the Mirror, without keeping a copy of the credentials
	id := fmt.Sprintf("%d %t %x", cfg.MaxConcurrentReconciles, cfg.CopyReferrers, sum)
	r.mu.Lock()
	m, oldCfg := r.mirror, r.cfg
	rebuild := m == nil || r.mirrorID != id
	r.mu.Unlock()
	if rebuild {
		if m, err = r.newMirror(cfg, creds); err != nil {
			r.mu.Lock()
			r.err = err
			r.mu.Unlock()
			r.Log.Error(err, "Building the copy engine")
			return ctrl.Result{}, nil
		}
	}
	r.mu.Lock()
	r.cfg, r.mirror, r.mirrorID, r.err = cfg, m, id, nil
	r.mu.Unlock()
	r.Log.Info("Configuration loaded", "backupRegistry", cfg.BackupRegistry, "maxConcurrentReconciles", cfg.MaxConcurrentReconciles, "ignoredNamespaces", cfg.IgnoredNamespaces, "pushCredentials", creds.PushSource)
	if (rebuild || oldCfg == nil || !oldCfg.Equal(cfg)) && r.OnChange != nil {
		r.OnChange(ctx)
	}
	return ctrl.Result{}, nil
}

func (r *Reconciler) load(ctx context.Context) (*config.Config, *config.Credentials, error) {
	var cm corev1.ConfigMap
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: v1alpha1.ConfigMapName}, &cm)
	if apierrors.IsNotFound(err) {
		return nil, nil, fmt.Errorf("ConfigMap %s/%s does not exist: create it with at least %s, e.g. kubectl -n %s create configmap %s --from-literal=%s=quay.io/acme", r.Namespace, v1alpha1.ConfigMapName, config.KeyBackupRegistry, r.Namespace, v1alpha1.ConfigMapName, config.KeyBackupRegistry)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading ConfigMap %s/%s: %w", r.Namespace, v1alpha1.ConfigMapName, err)
	}
	cfg, err := config.Parse(cm.Data, r.Namespace)
	if err != nil {
		return nil, nil, err
	}
	creds, err := config.LoadCredentials(ctx, r.Client, r.Namespace, r.PushSecret)
	if err != nil {
		return nil, nil, err
	}
	return cfg, creds, nil
}

func (r *Reconciler) newMirror(cfg *config.Config, creds *config.Credentials) (*mirror.Mirror, error) {
	opts := append([]mirror.Option{mirror.WithUserAgent(userAgent), mirror.WithMaxConcurrentCopies(cfg.MaxConcurrentReconciles),
		mirror.WithReferrers(cfg.CopyReferrers)}, r.MirrorOptions...)
	if creds.Push != nil {
		kc, err := dockerconfig.Keychain(creds.Push)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", creds.PushSource, err)
		}
		// The push config may also hold credentials for source registries (e.g. Docker Hub,
		// to lift its pull limits); nothing is pushed there.
		opts = append(opts, mirror.WithDestinationKeychain(kc), mirror.WithSourceKeychain(kc))
	}
	return mirror.New(opts...)
}
