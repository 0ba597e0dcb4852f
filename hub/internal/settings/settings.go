// Package settings keeps the hub's configuration current: it reconciles the ConfigMap
// image-cloner-configuration and the credential Secrets of the hub's namespace into a parsed
// config.Config and a mirror.Mirror, rebuilt when the credentials or the copy bound change, and
// hands the pull-only Secret to every member cluster. Push credentials never leave the hub.
package settings

import (
	"bytes"
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
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/dockerconfig"
	"github.com/image-cloner/image-cloner/pkg/mirror"
)

// ReasonInvalidConfiguration is the reason of the Warning Event on the ConfigMap when it is
// invalid.
const ReasonInvalidConfiguration = "InvalidConfiguration"

// Reconciler owns the hub's configuration. It is the only reconciler of the configuration
// objects; every change maps onto its single request.
type Reconciler struct {
	Client     client.Reader
	Namespace  string
	PushSecret string
	Clusters   *clusters.Registry
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
	pull     []byte
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

// SetupWithManager registers the Reconciler, and with the Registry to hand members the pull
// Secret when they connect.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil || r.Namespace == "" || r.PushSecret == "" || r.Clusters == nil {
		return errors.New("settings.Reconciler needs Client, Namespace, PushSecret and Clusters")
	}
	r.Clusters.AddListener(r)
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
	id := fmt.Sprintf("%d %x", cfg.MaxConcurrentReconciles, sum)
	r.mu.Lock()
	m, oldCfg, oldPull := r.mirror, r.cfg, r.pull
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
	r.cfg, r.mirror, r.mirrorID, r.pull, r.err = cfg, m, id, creds.Pull, nil
	r.mu.Unlock()
	r.Log.Info("Configuration loaded", "backupRegistry", cfg.BackupRegistry, "maxConcurrentReconciles", cfg.MaxConcurrentReconciles, "ignoredNamespaces", cfg.IgnoredNamespaces, "pushCredentials", creds.PushSource)
	if !bytes.Equal(oldPull, creds.Pull) {
		for _, mem := range r.Clusters.Members() {
			r.syncPullSecret(ctx, mem)
		}
	}
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
	opts := append([]mirror.Option{mirror.WithMaxConcurrentCopies(cfg.MaxConcurrentReconciles)}, r.MirrorOptions...)
	if creds.Push != nil {
		kc, err := dockerconfig.Keychain(creds.Push)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", creds.PushSource, err)
		}
		// The push config may also hold credentials for source registries (e.g. Docker Hub,
		// to lift its pull limits); nothing is pushed there.
		opts = append(opts, mirror.WithTargetKeychain(kc), mirror.WithSourceKeychain(kc))
	}
	return mirror.New(opts...)
}

// Prepare implements clusters.Listener.
func (r *Reconciler) Prepare(cluster.Cluster) error { return nil }

// Connected implements clusters.Listener: the member gets the pull Secret.
func (r *Reconciler) Connected(ctx context.Context, m *clusters.Member) {
	go r.syncPullSecret(ctx, m)
}

// Disconnected implements clusters.Listener.
func (r *Reconciler) Disconnected(string) {}

// syncPullSecret makes the member's Secret v1alpha1.PullSecretName in the agent's namespace hold
// the hub's pull-only credentials. Without pull credentials configured it leaves the member
// alone (it never deletes what someone else may have put there).
func (r *Reconciler) syncPullSecret(ctx context.Context, m *clusters.Member) {
	r.mu.Lock()
	pull := r.pull
	r.mu.Unlock()
	if pull == nil {
		return
	}
	log := r.Log.WithValues("cluster", m.Name, "secret", v1alpha1.PullSecretName)
	c := m.Cluster.GetClient() // Secrets are read from the API server, never cached
	key := client.ObjectKey{Namespace: v1alpha1.DefaultNamespace, Name: v1alpha1.PullSecretName}
	var s corev1.Secret
	err := c.Get(ctx, key, &s)
	switch {
	case apierrors.IsNotFound(err):
		s = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue}},
			Type:       corev1.SecretTypeDockerConfigJson,
			Data:       map[string][]byte{corev1.DockerConfigJsonKey: pull},
		}
		err = c.Create(ctx, &s)
	case err == nil:
		if bytes.Equal(s.Data[corev1.DockerConfigJsonKey], pull) && s.Type == corev1.SecretTypeDockerConfigJson {
			return
		}
		s.Data = map[string][]byte{corev1.DockerConfigJsonKey: pull}
		err = c.Update(ctx, &s)
	}
	if err != nil {
		log.Error(err, "Handing the pull-only Secret to the member (is the agent installed, with its namespace?)", "namespace", key.Namespace)
		return
	}
	log.Info("Pull-only Secret handed to the member", "namespace", key.Namespace)
}
