package patcher_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/image-cloner/image-cloner/agent/internal/agenttest"
	"github.com/image-cloner/image-cloner/agent/internal/patcher"
	"github.com/image-cloner/image-cloner/internal/backups"
	"github.com/image-cloner/image-cloner/internal/testenv"
	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

const backupRegistry = "backup.example.com/acme"

// policy is what the test's patcher reads; subtests change it under mu.
type policy struct {
	mu sync.Mutex
	s  backups.Policy
}

func (s *policy) get(context.Context) (*backups.Policy, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.s
	return &c, nil
}

func (s *policy) set(f func(*backups.Policy)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.s)
}

// TestPatcher runs the patcher's behaviours against one real control plane: a manager with
// every kind's reconciler, as the agent runs it.
func TestPatcher(t *testing.T) {
	g := NewWithT(t)
	ctrl.SetLogger(logr.Discard())
	cluster := testenv.StartCluster(t, testenv.ClusterOptions{CRDs: true})
	c := cluster.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	cfg := &policy{s: backups.Policy{Namespace: apiv1.DefaultNamespace}}
	mgr, err := ctrl.NewManager(cluster.Config, ctrl.Options{
		Scheme:  testenv.Scheme(),
		Metrics: metricsserver.Options{BindAddress: "0"},
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(backups.SetupIndexes(ctx, mgr.GetFieldIndexer(), workload.Kinds()...)).To(Succeed())
	lookup := &backups.Lookup{Reader: mgr.GetClient()}
	recs, err := patcher.SetupAll(mgr, lookup, cfg.get, mgr.GetEventRecorder("image-cloner-agent"))
	g.Expect(err).NotTo(HaveOccurred())
	deployments := recs[0]
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(ctx) }()
	g.Expect(mgr.GetCache().WaitForCacheSync(ctx)).To(BeTrue())

	// Pull credentials exist, so patched workloads must reference the namespace copy.
	g.Expect(agenttest.EnsureNamespace(ctx, c, apiv1.DefaultNamespace)).To(Succeed())
	g.Expect(c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: apiv1.DefaultNamespace, Name: apiv1.PullSecretName},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)},
	})).To(Succeed())

	image := func(obj client.Object, list, name string) func() (string, error) {
		return func() (string, error) {
			o := obj.DeepCopyObject().(client.Object)
			if err := c.Get(ctx, client.ObjectKeyFromObject(obj), o); err != nil {
				return "", err
			}
			spec, _ := workload.PodSpec(o)
			for _, r := range workload.Refs(spec) {
				if r.List == list && r.Container == name {
					return r.Image, nil
				}
			}
			return "", nil
		}
	}
	waitImage := func(g Gomega, obj client.Object, list, name, want string) {
		get := image(obj, list, name)
		err := testenv.WaitFor(ctx, 30*time.Second, func(context.Context) (bool, error) {
			got, err := get()
			return got == want, err
		})
		got, _ := get()
		g.Expect(err).NotTo(HaveOccurred(), "%T %s: %s is %q, want %q", obj, obj.GetName(), name, got, want)
	}

	// waitCached waits until d is in the manager's cache, where the reconciler reads it.
	waitCached := func(g Gomega, d *appsv1.Deployment) {
		g.Expect(testenv.WaitFor(ctx, 10*time.Second, func(ctx context.Context) (bool, error) {
			return mgr.GetCache().Get(ctx, client.ObjectKeyFromObject(d), &appsv1.Deployment{}) == nil, nil
		})).To(Succeed())
	}
	// reconcileNow reconciles d directly once it is cached: the outcome is decided, not raced
	// against the controller.
	reconcileNow := func(g Gomega, d *appsv1.Deployment) {
		waitCached(g, d)
		_, err := deployments.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(d)})
		g.Expect(err).NotTo(HaveOccurred())
	}

	t.Run("patchesEveryKindWhoseImageHasAReadyBackup", func(t *testing.T) {
		g := NewWithT(t)
		ns, err := agenttest.Namespace(ctx, c, nil)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = agenttest.ClonedImage(ctx, c, "nginx:1.25", apiv1.PhaseReady, backupRegistry+"/docker.io_library_nginx:1.25")
		g.Expect(err).NotTo(HaveOccurred())
		_, err = agenttest.ClonedImage(ctx, c, "busybox:1.36", apiv1.PhaseCloning, "")
		g.Expect(err).NotTo(HaveOccurred())

		for _, w := range agenttest.Workloads(ns, "busybox:1.36", "nginx:1.25") {
			g.Expect(c.Create(ctx, w)).To(Succeed())
			if _, ok := w.(*batchv1.Job); ok {
				continue // immutable pod template: left to the Pod webhook
			}
			waitImage(g, w, workload.Containers, "main", backupRegistry+"/docker.io_library_nginx:1.25")
			// The init container's backup is still Cloning: it must not have been touched,
			// though the same Update rewrote the main container.
			got, err := image(w, workload.InitContainers, "init")()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal("busybox:1.36"))

			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(w), w)).To(Succeed())
			orig, err := workload.Originals(w)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(orig).To(Equal(map[string]string{"containers/main": "nginx:1.25"}))
			spec, _ := workload.PodSpec(w)
			g.Expect(spec.ImagePullSecrets).To(ConsistOf(corev1.LocalObjectReference{Name: apiv1.NamespacePullSecretName}))
		}

		// An ImagesPatched event is recorded on the workload.
		g.Expect(testenv.WaitFor(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
			var evs eventsv1.EventList
			if err := c.List(ctx, &evs, client.InNamespace(ns)); err != nil {
				return false, err
			}
			for _, e := range evs.Items {
				if e.Reason == patcher.ReasonImagesPatched && e.Regarding.Kind == "Deployment" && e.Type == corev1.EventTypeNormal {
					return true, nil
				}
			}
			return false, nil
		})).To(Succeed())
	})

	t.Run("patchesWhenTheBackupBecomesReady", func(t *testing.T) {
		g := NewWithT(t)
		ns, err := agenttest.Namespace(ctx, c, nil)
		g.Expect(err).NotTo(HaveOccurred())
		ci, err := agenttest.ClonedImage(ctx, c, "redis:7", apiv1.PhasePending, "")
		g.Expect(err).NotTo(HaveOccurred())
		d := agenttest.Deployment(ns, "redis", "redis:7", "redis:7")
		g.Expect(c.Create(ctx, d)).To(Succeed())

		// Reconcile directly: the outcome is decided, not raced against the controller.
		reconcileNow(g, d)
		g.Expect(image(d, workload.Containers, "main")()).To(Equal("redis:7"), "a Pending backup must not be used")

		g.Expect(agenttest.SetPhase(ctx, c, ci, apiv1.PhaseReady, backupRegistry+"/docker.io_library_redis:7")).To(Succeed())
		waitImage(g, d, workload.Containers, "main", backupRegistry+"/docker.io_library_redis:7")
		waitImage(g, d, workload.InitContainers, "init", backupRegistry+"/docker.io_library_redis:7")
	})

	t.Run("pinsTheDigestWhenConfigured", func(t *testing.T) {
		g := NewWithT(t)
		cfg.set(func(s *backups.Policy) { s.PinDigest = true })
		defer cfg.set(func(s *backups.Policy) { s.PinDigest = false })
		ns, err := agenttest.Namespace(ctx, c, nil)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = agenttest.ClonedImage(ctx, c, "quay.io/prometheus/node-exporter:v1.8.0", apiv1.PhaseReady,
			backupRegistry+"/quay.io_prometheus_node-exporter:v1.8.0")
		g.Expect(err).NotTo(HaveOccurred())
		d := agenttest.Deployment(ns, "pinned", "quay.io/prometheus/node-exporter:v1.8.0", "quay.io/prometheus/node-exporter:v1.8.0")
		g.Expect(c.Create(ctx, d)).To(Succeed())
		waitImage(g, d, workload.Containers, "main", backupRegistry+"/quay.io_prometheus_node-exporter:v1.8.0@"+agenttest.Digest)
	})

	t.Run("leavesIgnoredNamespacesAlone", func(t *testing.T) {
		g := NewWithT(t)
		ns, err := agenttest.Namespace(ctx, c, nil)
		g.Expect(err).NotTo(HaveOccurred())
		cfg.set(func(s *backups.Policy) { s.IgnoredNamespaces = []string{ns} })
		defer cfg.set(func(s *backups.Policy) { s.IgnoredNamespaces = nil })
		_, err = agenttest.ClonedImage(ctx, c, "alpine:3.20", apiv1.PhaseReady, backupRegistry+"/docker.io_library_alpine:3.20")
		g.Expect(err).NotTo(HaveOccurred())
		d := agenttest.Deployment(ns, "ignored", "alpine:3.20", "alpine:3.20")
		g.Expect(c.Create(ctx, d)).To(Succeed())
		reconcileNow(g, d)
		g.Expect(image(d, workload.Containers, "main")()).To(Equal("alpine:3.20"))
	})

	t.Run("leavesOptedOutWorkloadsAndIgnoredImagesAlone", func(t *testing.T) {
		g := NewWithT(t)
		ns, err := agenttest.Namespace(ctx, c, nil)
		g.Expect(err).NotTo(HaveOccurred())
		conf, err := config.Parse(map[string]string{config.KeyBackupRegistry: backupRegistry, config.KeyImagesToIgnore: "docker.io/library/memcached:*"}, apiv1.DefaultNamespace)
		g.Expect(err).NotTo(HaveOccurred())
		cfg.set(func(s *backups.Policy) { s.ImagePatterns = conf.ImagePatterns() })
		defer cfg.set(func(s *backups.Policy) { s.ImagePatterns = nil })
		for _, img := range []string{"redis:7", "memcached:1.6"} {
			_, err = agenttest.ClonedImage(ctx, c, img, apiv1.PhaseReady, backupRegistry+"/docker.io_library_"+strings.Split(img, ":")[0]+":"+strings.Split(img, ":")[1])
			g.Expect(err).NotTo(HaveOccurred())
		}
		optedOut := agenttest.Deployment(ns, "opted-out", "redis:7", "redis:7")
		optedOut.Labels = map[string]string{apiv1.IgnoreLabel: apiv1.IgnoreValue}
		ignored := agenttest.Deployment(ns, "ignored-image", "memcached:1.6", "memcached:1.6")
		control := agenttest.Deployment(ns, "control", "redis:7", "redis:7")
		for _, d := range []*appsv1.Deployment{optedOut, ignored, control} {
			g.Expect(c.Create(ctx, d)).To(Succeed())
			reconcileNow(g, d)
		}
		g.Expect(image(optedOut, workload.Containers, "main")()).To(Equal("redis:7"))
		g.Expect(image(ignored, workload.Containers, "main")()).To(Equal("memcached:1.6"))
		waitImage(g, control, workload.Containers, "main", backupRegistry+"/docker.io_library_redis:7")
	})

	t.Run("leavesWorkloadsAloneInPodMode", func(t *testing.T) {
		g := NewWithT(t)
		cfg.set(func(s *backups.Policy) { s.RewriteMode = backups.RewritePod })
		defer cfg.set(func(s *backups.Policy) { s.RewriteMode = backups.RewriteWorkload })
		ns, err := agenttest.Namespace(ctx, c, nil)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = agenttest.ClonedImage(ctx, c, "memcached:1.6", apiv1.PhaseReady, backupRegistry+"/docker.io_library_memcached:1.6")
		g.Expect(err).NotTo(HaveOccurred())
		d := agenttest.Deployment(ns, "gitops", "memcached:1.6", "memcached:1.6")
		g.Expect(c.Create(ctx, d)).To(Succeed())
		reconcileNow(g, d)
		g.Expect(image(d, workload.Containers, "main")()).To(Equal("memcached:1.6"))
	})

	t.Run("retriesOnConflictKeepingTheOtherWrite", func(t *testing.T) {
		g := NewWithT(t)
		ns, err := agenttest.Namespace(ctx, c, nil)
		g.Expect(err).NotTo(HaveOccurred())
		cfg.set(func(s *backups.Policy) { s.IgnoredNamespaces = []string{ns} }) // keep the controller out
		defer cfg.set(func(s *backups.Policy) { s.IgnoredNamespaces = nil })
		_, err = agenttest.ClonedImage(ctx, c, "haproxy:3.0", apiv1.PhaseReady, backupRegistry+"/docker.io_library_haproxy:3.0")
		g.Expect(err).NotTo(HaveOccurred())
		d := agenttest.Deployment(ns, "lb", "haproxy:3.0", "haproxy:3.0")
		g.Expect(c.Create(ctx, d)).To(Succeed())
		waitCached(g, d)

		// Someone else writes the Deployment between the patcher's read and its update.
		conflicts := 0
		raced := false
		cl := mgr.GetClient()
		racing := &updateHook{Client: cl,
			update: func(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
				if !raced {
					raced = true
					other := &appsv1.Deployment{}
					if err := c.Get(ctx, client.ObjectKeyFromObject(obj), other); err != nil {
						return err
					}
					other.Labels = map[string]string{"owner": "someone-else"}
					if err := c.Update(ctx, other); err != nil {
						return err
					}
				}
				err := cl.Update(ctx, obj, opts...)
				if apierrors.IsConflict(err) {
					conflicts++
				}
				return err
			}}
		s, _ := cfg.get(ctx)
		s.IgnoredNamespaces = nil
		r := &patcher.Reconciler{Client: racing, APIReader: mgr.GetAPIReader(), Kind: &appsv1.Deployment{},
			Lookup: lookup, Policy: backups.Static(s)}
		_, err = r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(d)})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(conflicts).To(Equal(1), "the stale update was refused")
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
		g.Expect(d.Labels).To(HaveKeyWithValue("owner", "someone-else"), "the other write survives")
		g.Expect(workload.Images(d)).To(Equal([]string{backupRegistry + "/docker.io_library_haproxy:3.0"}))
	})

	t.Run("restoreAllPutsTheOriginalsBack", func(t *testing.T) {
		g := NewWithT(t)
		ns, err := agenttest.Namespace(ctx, c, nil)
		g.Expect(err).NotTo(HaveOccurred())
		_, err = agenttest.ClonedImage(ctx, c, "ghcr.io/acme/app:2", apiv1.PhaseReady, backupRegistry+"/ghcr.io_acme_app:2")
		g.Expect(err).NotTo(HaveOccurred())
		var ws []client.Object
		for _, w := range agenttest.Workloads(ns, "busybox:1.36", "ghcr.io/acme/app:2") {
			if _, ok := w.(*batchv1.Job); !ok {
				ws = append(ws, w)
			}
		}
		for _, w := range ws {
			spec, _ := workload.PodSpec(w)
			spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "own"}}
			g.Expect(c.Create(ctx, w)).To(Succeed())
			waitImage(g, w, workload.Containers, "main", backupRegistry+"/ghcr.io_acme_app:2")
		}
		// Uninstall: stop the agent, then restore.
		cancel()
		g.Expect(<-mgrDone).To(Succeed())
		n, err := patcher.RestoreAll(context.Background(), c)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(n).To(BeNumerically(">=", len(ws)))
		for _, w := range ws {
			g.Expect(c.Get(context.Background(), client.ObjectKeyFromObject(w), w)).To(Succeed())
			spec, _ := workload.PodSpec(w)
			g.Expect(workload.Images(w)).To(Equal([]string{"busybox:1.36", "ghcr.io/acme/app:2"}))
			g.Expect(spec.ImagePullSecrets).To(Equal([]corev1.LocalObjectReference{{Name: "own"}}))
			g.Expect(w.GetAnnotations()).NotTo(HaveKey(workload.OriginalImagesAnnotation))
			g.Expect(w.GetAnnotations()).NotTo(HaveKey(backups.AddedPullSecretAnnotation))
		}
	})
}

// updateHook is a client whose Update runs update.
type updateHook struct {
	client.Client
	update func(context.Context, client.Object, ...client.UpdateOption) error
}

func (u *updateHook) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	return u.update(ctx, obj, opts...)
}
