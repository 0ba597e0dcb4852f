package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	webhookadmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/image-cloner/image-cloner/agent/internal/admission"
	"github.com/image-cloner/image-cloner/agent/internal/certs"
	"github.com/image-cloner/image-cloner/agent/internal/patcher"
	"github.com/image-cloner/image-cloner/agent/internal/pullsecrets"
	"github.com/image-cloner/image-cloner/internal/backups"
	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// Names of the objects the agent's manifests create (deploy/webhooks).
const (
	DefaultService           = "image-cloner-agent-webhook"
	DefaultCertSecret        = "image-cloner-agent-webhook-certs"
	DefaultValidatingWebhook = "image-cloner-validating"
	DefaultMutatingWebhook   = "image-cloner-mutating"
	LeaderElectionID         = "image-cloner-agent.image-cloner.io"
)

// Options are the agent's settings, from flags.
type Options struct {
	// Config reaches the member cluster's API server.
	Config *rest.Config
	// Namespace is the agent's namespace (ConfigMap, pull credentials, certificates, lease).
	Namespace string
	// MetricsAddr and ProbeAddr are where metrics and health probes are served; "0" disables.
	MetricsAddr, ProbeAddr string
	// LeaderElect makes the reconcilers run on one replica at a time; webhooks and
	// certificates run on every replica.
	LeaderElect bool
	// WebhookHost and WebhookPort are where the webhook server listens (default :9443).
	WebhookHost string
	WebhookPort int
	// CertDir: with CertManager, the directory where cert-manager's Secret is mounted (tls.crt,
	// tls.key), watched for renewals. Unused otherwise.
	CertDir     string
	CertManager bool
	// Service, CertSecret, ValidatingWebhook and MutatingWebhook name the webhook Service, the
	// Secret holding the built-in certificates and the configurations to inject; defaults above.
	Service, CertSecret                string
	ValidatingWebhook, MutatingWebhook string
	// CertOptions tune the built-in certificates (validity, check interval); Client, names
	// and webhooks are filled in.
	CertOptions certs.Options
	// BackupProbe tells the Pod mutating webhook whether the backup registry answers; nil
	// means admission.NewRegistryProbe's defaults (GET /v2/, 2s timeout, cached 5s).
	BackupProbe *admission.RegistryProbe
	// SkipNameValidation lets several agents run in one process (tests): controller-runtime
	// otherwise refuses a second controller of the same name.
	SkipNameValidation bool
	// MetricsRegistry receives the metrics New makes (the certificate's expiry); default
	// controller-runtime's, which the metrics endpoint serves. Several agents in one process
	// (tests) need one each.
	MetricsRegistry prometheus.Registerer
}

func (o *Options) defaults() {
	if o.Namespace == "" {
		o.Namespace = apiv1.DefaultNamespace
	}
	if o.WebhookPort == 0 {
		o.WebhookPort = 9443
	}
	if o.Service == "" {
		o.Service = DefaultService
	}
	if o.CertSecret == "" {
		o.CertSecret = DefaultCertSecret
	}
	if o.ValidatingWebhook == "" {
		o.ValidatingWebhook = DefaultValidatingWebhook
	}
	if o.MutatingWebhook == "" {
		o.MutatingWebhook = DefaultMutatingWebhook
	}
}

// Scheme returns the types the agent uses.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := apiv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Agent is an assembled agent, ready to Start.
type Agent struct {
	Manager manager.Manager
	// Certs is nil with cert-manager.
	Certs *certs.Rotator
}

// New assembles the agent's manager.
func New(ctx context.Context, o Options) (*Agent, error) {
	o.defaults()
	if o.Config == nil {
		return nil, errors.New("no API server configuration")
	}
	scheme := Scheme()
	a := &Agent{}

	webhookOpts := webhook.Options{Host: o.WebhookHost, Port: o.WebhookPort,
		// TLS 1.2 at least, whatever GODEBUG says (tls10server=1 would bring 1.0 back).
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.MinVersion = tls.VersionTLS12 }}}
	if o.CertManager {
		if o.CertDir == "" {
			return nil, errors.New("--cert-manager needs --cert-dir, where cert-manager's Secret is mounted")
		}
		webhookOpts.CertDir, webhookOpts.CertName, webhookOpts.KeyName = o.CertDir, "tls.crt", "tls.key"
	} else {
		direct, err := client.New(o.Config, client.Options{Scheme: scheme})
		if err != nil {
			return nil, err
		}
		co := o.CertOptions
		co.Client, co.Namespace, co.SecretName, co.Service = direct, o.Namespace, o.CertSecret, o.Service
		co.ValidatingWebhooks = []string{o.ValidatingWebhook}
		co.MutatingWebhooks = []string{o.MutatingWebhook}
		if a.Certs, err = certs.New(co); err != nil {
			return nil, err
		}
		webhookOpts.TLSOpts = append(webhookOpts.TLSOpts, func(c *tls.Config) { c.GetCertificate = a.Certs.GetCertificate })
	}

	mgr, err := ctrl.NewManager(o.Config, ctrl.Options{
		Scheme: scheme,
		Cache: cache.Options{
			ByObject:         pullsecrets.CacheByObject(o.Namespace),
			DefaultTransform: cache.TransformStripManagedFields(),
		},
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:        o.ProbeAddr,
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       o.Namespace,
		LeaderElectionReleaseOnCancel: true,
		WebhookServer:                 webhook.NewServer(webhookOpts),
		Controller:                    ctrlconfig.Controller{SkipNameValidation: &o.SkipNameValidation},
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	a.Manager = mgr

	var patched []client.Object
	for _, k := range workload.Kinds() {
		if _, ok := k.(*batchv1.Job); !ok {
			patched = append(patched, k)
		}
	}
	if err := backups.SetupIndexes(ctx, mgr.GetFieldIndexer(), patched...); err != nil {
		return nil, err
	}
	policy := backups.FromConfigMap(mgr.GetClient(), o.Namespace)
	lookup := &backups.Lookup{Reader: mgr.GetClient()}
	if _, err := patcher.SetupAll(mgr, lookup, policy, mgr.GetEventRecorder("image-cloner-agent")); err != nil {
		return nil, err
	}
	ps := &pullsecrets.Reconciler{Client: mgr.GetClient(), Namespace: o.Namespace, Policy: policy}
	if err := ps.SetupWithManager(mgr); err != nil {
		return nil, err
	}

	probe := o.BackupProbe
	if probe == nil {
		if probe, err = admission.NewRegistryProbe(); err != nil {
			return nil, err
		}
	}
	decoder := webhookadmission.NewDecoder(scheme)
	admission.Register(mgr.GetWebhookServer(),
		&admission.Validator{Client: mgr.GetClient(), Reader: mgr.GetClient(), Lookup: lookup, Policy: policy, Decoder: decoder},
		&admission.Mutator{Reader: mgr.GetClient(), Lookup: lookup, Policy: policy, Decoder: decoder,
			Backups: probe, Recorder: mgr.GetEventRecorder("image-cloner-agent"), APIReader: mgr.GetAPIReader()})

	if a.Certs != nil {
		if err := mgr.Add(a.Certs); err != nil {
			return nil, err
		}
	}
	serving := certificateInDir(o.CertDir)
	if a.Certs != nil {
		serving = a.Certs.Current
	}
	reg := o.MetricsRegistry
	if reg == nil {
		reg = ctrlmetrics.Registry
	}
	if err := reg.Register(certificateExpiry{serving: serving}); err != nil {
		return nil, fmt.Errorf("registering the agent's metrics: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return nil, err
	}
	// The webhooks answer from the cache: not ready until it has synced.
	if err := mgr.AddReadyzCheck("cache", func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("cache not synced yet")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if a.Certs != nil {
		if err := mgr.AddReadyzCheck("certificates", func(*http.Request) error {
			select {
			case <-a.Certs.Ready():
				return nil
			default:
				return errors.New("no serving certificate yet")
			}
		}); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// RestoreOptions configure Restore.
type RestoreOptions struct {
	// Namespace is the agent's, where its leader lease is.
	Namespace string
	// ValidatingWebhook and MutatingWebhook are the configurations to delete; defaults above.
	ValidatingWebhook, MutatingWebhook string
	// Force restores even though the agent's lease is held.
	Force bool
}

// Restore is the uninstall path: it deletes the webhook configurations (so the mutating
// webhook cannot rewrite the workloads again) and restores every workload's original images.
// The agent must be stopped first (scale its Deployment to 0), or its patcher patches them
// again: Restore refuses while the agent's leader lease is held, unless Force.
func Restore(ctx context.Context, cfg *rest.Config, o RestoreOptions) (int, error) {
	validating, mutating := o.ValidatingWebhook, o.MutatingWebhook
	if o.Namespace == "" {
		o.Namespace = apiv1.DefaultNamespace
	}
	if validating == "" {
		validating = DefaultValidatingWebhook
	}
	if mutating == "" {
		mutating = DefaultMutatingWebhook
	}
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return 0, err
	}
	if !o.Force {
		if err := agentStopped(ctx, c, o.Namespace); err != nil {
			return 0, err
		}
	}
	for _, obj := range []client.Object{
		&admissionregistrationv1.MutatingWebhookConfiguration{},
		&admissionregistrationv1.ValidatingWebhookConfiguration{},
	} {
		name := mutating
		if _, ok := obj.(*admissionregistrationv1.ValidatingWebhookConfiguration); ok {
			name = validating
		}
		obj.SetName(name)
		if err := client.IgnoreNotFound(c.Delete(ctx, obj)); err != nil {
			return 0, fmt.Errorf("deleting %T %s: %w", obj, name, err)
		}
	}
	return patcher.RestoreAll(ctx, c)
}

// agentStopped fails while an agent holds its leader lease in namespace.
func agentStopped(ctx context.Context, c client.Client, namespace string) error {
	lease := &coordinationv1.Lease{}
	err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: LeaderElectionID}, lease)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking that the agent is stopped (Lease %s/%s): %w", namespace, LeaderElectionID, err)
	}
	holder := ptr.Deref(lease.Spec.HolderIdentity, "")
	if holder == "" || lease.Spec.RenewTime == nil {
		return nil
	}
	d := time.Duration(ptr.Deref(lease.Spec.LeaseDurationSeconds, 15)) * time.Second
	if age := time.Since(lease.Spec.RenewTime.Time); age < d {
		return fmt.Errorf("the agent is still running (%s renewed its lease %s ago): "+
			"scale it to 0 first (kubectl -n %s scale deploy/image-cloner-agent --replicas=0), or its patcher "+
			"will patch the workloads again; --force restores anyway", holder, age.Round(time.Second), namespace)
	}
	return nil
}
