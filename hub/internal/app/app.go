// Package app wires the hub together: a controller-runtime manager in the hub cluster with the
// clusters, settings, images and pullsecret reconcilers, metrics, health checks and the dashboard.
// hub/main.go parses flags into Options and calls Run; tests call New and start the manager
// themselves.
package app

import (
	"context"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/image-cloner/image-cloner/hub/internal/backupprobe"
	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/hub/internal/dashboard"
	"github.com/image-cloner/image-cloner/hub/internal/images"
	"github.com/image-cloner/image-cloner/hub/internal/metrics"
	"github.com/image-cloner/image-cloner/hub/internal/pullsecret"
	"github.com/image-cloner/image-cloner/hub/internal/settings"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/mirror"
)

// Options configure the hub; main.go fills them from flags.
type Options struct {
	Namespace              string
	MetricsBindAddress     string // "0" disables
	HealthProbeBindAddress string // "0" disables
	// PprofBindAddress serves net/http/pprof (controller-runtime's); empty or "0" disables it.
	PprofBindAddress string
	LeaderElection   bool
	LocalCluster     bool
	PushSecret       string
	Clusters         clusters.Options
	// ImageWorkers is how many images are reconciled at once; 0 takes images.Reconciler's
	// default.
	ImageWorkers int
	// MetricsRegistry receives the hub's metrics; default controller-runtime's.
	MetricsRegistry prometheus.Registerer
	// MirrorOptions are added to the Mirror's (tests: a transport trusting a test CA).
	MirrorOptions []mirror.Option
	// RegistryCAFile is a PEM bundle of certificate authorities trusted for registry
	// connections besides the system's (registries with a private CA); "" trusts the system's.
	RegistryCAFile string
	// Observer is told about copies besides the metrics, e.g. by tests.
	Observer mirror.Observer
	// BackupProbe tunes the probe of the backup registry behind image_cloner_backup_registry_up
	// (interval, timeout, transport: tests); its Registry and Report are the hub's. Its transport
	// defaults to the registry connections' (trusting RegistryCAFile).
	BackupProbe backupprobe.Prober
	Log         logr.Logger
	// DashboardBindAddress is where the read-only dashboard and its JSON API listen;
	// "" or "0" disables it.
	DashboardBindAddress string
	// LogBuffer, when set, receives the hub's log entries for the dashboard's logs page (the
	// hub tees Log into it); New makes one when the dashboard is enabled.
	LogBuffer *dashboard.LogBuffer
	// PullSecretBackoff is the first wait before handing a member the pull-only Secret again
	// after a failure, doubling up to 5 minutes; default 2s.
	PullSecretBackoff time.Duration
	// SkipNameValidation lets several hubs run in one process (tests): controller-runtime
	// otherwise refuses a second controller of the same name.
	SkipNameValidation bool
}

// Hub is a wired, not yet started, hub.
type Hub struct {
	Manager  manager.Manager
	Fleet    *clusters.Fleet
	Settings *settings.Reconciler
	Images   *images.Reconciler
	Metrics  *metrics.Metrics
	// Dashboard is nil when disabled.
	Dashboard *dashboard.Dashboard
	// Collector builds what the dashboard and its API show.
	Collector *dashboard.Collector
}

// New builds the hub on the hub cluster cfg points at.
func New(cfg *rest.Config, o Options) (*Hub, error) {
	if o.Namespace == "" {
		o.Namespace = v1alpha1.DefaultNamespace
	}
	if o.PushSecret == "" {
		o.PushSecret = config.DefaultPushSecretName
	}
	if o.MetricsBindAddress == "" {
		o.MetricsBindAddress = "0"
	}
	if o.HealthProbeBindAddress == "" {
		o.HealthProbeBindAddress = "0"
	}
	if o.RegistryCAFile != "" {
		t, err := registryTransport(o.RegistryCAFile)
		if err != nil {
			return nil, err
		}
		// First, so that a transport among the caller's MirrorOptions still wins.
		o.MirrorOptions = append([]mirror.Option{mirror.WithTransport(t)}, o.MirrorOptions...)
		if o.BackupProbe.Transport == nil {
			o.BackupProbe.Transport = t
		}
	}
	log := o.Log
	if log.GetSink() == nil {
		log = ctrl.Log.WithName("hub")
	}
	dashboardOn := o.DashboardBindAddress != "" && o.DashboardBindAddress != "0"
	if o.LogBuffer == nil && dashboardOn {
		o.LogBuffer = dashboard.NewLogBuffer(0)
	}
	if o.LogBuffer != nil {
		log = dashboard.Tee(log, o.LogBuffer, 0)
	}
	scheme := Scheme()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme,
		Logger: log,
		// The hub reads only its own namespace: registration and credential Secrets, the ConfigMap.
		Cache: cache.Options{
			DefaultNamespaces: map[string]cache.Config{o.Namespace: {}},
			DefaultTransform:  cache.TransformStripManagedFields(),
		},
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress:        o.HealthProbeBindAddress,
		PprofBindAddress:              o.PprofBindAddress,
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              "image-cloner-hub",
		LeaderElectionNamespace:       o.Namespace,
		LeaderElectionReleaseOnCancel: true,
		Client:                        client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Event{}}}},
		Controller:                    ctrlconfig.Controller{SkipNameValidation: &o.SkipNameValidation},
	})
	if err != nil {
		return nil, err
	}
	m, err := metrics.New(o.MetricsRegistry)
	if err != nil {
		return nil, err
	}
	recorder := mgr.GetEventRecorder("image-cloner-hub")
	fleet := clusters.New(scheme, recorder, log.WithName("clusters"), o.Clusters)
	if err := m.Fleet(fleet.Snapshot, fleet.Members); err != nil {
		return nil, err
	}
	if err := m.CacheSizes(fleet.CacheSizes); err != nil {
		return nil, err
	}
	if o.LocalCluster {
		fleet.AddLocal(mgr.GetConfig(), o.Namespace)
	}
	h := &Hub{Manager: mgr, Fleet: fleet, Metrics: m}
	rateLimits := dashboard.NewRateLimits()
	h.Collector = &dashboard.Collector{Fleet: fleet, Metrics: m, RateLimits: rateLimits, Series: dashboard.NewSeries(0)}

	h.Images = &images.Reconciler{Fleet: fleet, Log: log.WithName("images"), Metrics: m.Images(), Workers: o.ImageWorkers}
	h.Settings = &settings.Reconciler{
		Client: mgr.GetClient(), Namespace: o.Namespace, PushSecret: o.PushSecret,
		Recorder: recorder, Log: log.WithName("settings"),
		MirrorOptions: append([]mirror.Option{mirror.WithObserver(metrics.Chain(metrics.Chain(m.Observer(), rateLimits.Observer()), o.Observer)), mirror.WithLogger(log.WithName("mirror"))}, o.MirrorOptions...),
		OnChange:      func(ctx context.Context) { go h.Images.Resync(ctx) },
	}
	h.Images.InForce = func() (*config.Config, images.Copier) {
		cfg, mi := h.Settings.Current()
		if cfg == nil || mi == nil {
			return nil, nil
		}
		return cfg, mi
	}
	if err := (&clusters.Reconciler{Client: mgr.GetClient(), Namespace: o.Namespace, Fleet: fleet}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := h.Settings.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := h.Images.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := m.Coverage(h.Images.Coverage); err != nil {
		return nil, err
	}
	probe := o.BackupProbe
	probe.Registry = func() string {
		if cfg, _ := h.Settings.Current(); cfg != nil {
			return cfg.BackupRegistry
		}
		return ""
	}
	probe.Report = m.BackupProbed
	if err := mgr.Add(&probe); err != nil {
		return nil, err
	}
	if err := (&pullsecret.Reconciler{Client: mgr.GetClient(), Namespace: o.Namespace, Fleet: fleet, BackoffInitial: o.PullSecretBackoff}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if dashboardOn {
		h.Dashboard, err = dashboard.New(dashboard.Options{
			Addr: o.DashboardBindAddress, Collect: h.Collector.Collect, Coverage: h.Images.Coverage, Logs: o.LogBuffer,
			Metrics: m, Series: h.Collector.Series,
			MetricsAddr: enabled(o.MetricsBindAddress), ProbeAddr: enabled(o.HealthProbeBindAddress),
			Log: log.WithName("dashboard"),
		})
		if err != nil {
			return nil, err
		}
		if err := mgr.Add(h.Dashboard); err != nil {
			return nil, err
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	// Not ready while the configuration is invalid. controller-runtime withholds a failed check's
	// reason from the probe's body ("reason withheld"); the log line and the Warning Event on
	// the ConfigMap say what to fix.
	if err := mgr.AddReadyzCheck("configuration", func(*http.Request) error { return h.Settings.Err() }); err != nil {
		return nil, err
	}
	return h, nil
}

// Run builds the hub and runs it until ctx ends.
func Run(ctx context.Context, cfg *rest.Config, o Options) error {
	h, err := New(cfg, o)
	if err != nil {
		return err
	}
	return h.Manager.Start(ctx)
}

// enabled returns addr, or "" when it is "0" (disabled).
func enabled(addr string) string {
	if addr == "0" {
		return ""
	}
	return addr
}

// Scheme returns the hub's scheme: the Kubernetes types and image-cloner.io/v1alpha1.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}
