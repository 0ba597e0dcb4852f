package app_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/hub/internal/app"
	"github.com/image-cloner/image-cloner/hub/internal/backupprobe"
	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/imageref"
	"github.com/image-cloner/image-cloner/pkg/mirror"
)

const hubNS = v1alpha1.DefaultNamespace

// wait is how long any create-and-wait may take on a busy machine.
const wait = 90 * time.Second

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	code := m.Run()
	stopSuite()
	os.Exit(code)
}

// fleet is a hub cluster running an in-process hub, member clusters, an anonymous upstream
// registry and a backup registry with auth.
//
// Unless a test asks for its own (isolated), the clusters and registries are the package's
// (see suite_test.go): the test's hub gets a namespace of its own in the hub cluster (ns) and
// a BACKUP_REGISTRY path of its own (backupRegistry), and what it leaves in the clusters is
// swept when it ends.
type fleet struct {
	t        *testing.T
	hub      *testenv.Cluster
	members  []*testenv.Cluster
	upstream *testenv.Registry
	backup   *testenv.Registry
	h        *app.Hub
	metrics  *prometheus.Registry
	opts     fleetOptions
	stopHub  func()
	// ns is the hub's namespace: its ConfigMap, Secrets, Events and registrations.
	ns string
	// backupRegistry is the default BACKUP_REGISTRY of this test's hub.
	backupRegistry string
}

type fleetOptions struct {
	// isolated starts clusters and registries for this test alone, for a test that stops one
	// of them, garbage-collects the backup registry or changes a member's RBAC.
	isolated bool
	members  int
	// configData is the hub's ConfigMap data; default BACKUP_REGISTRY = the backup registry.
	configData map[string]string
	// noPushSecret leaves the push credentials out.
	noPushSecret bool
	// local registers the hub's own cluster as member "local" (--local-cluster).
	local bool
	// observer is told about the Mirror's copies.
	observer mirror.Observer
	// mirrorOptions are added to the Mirror's, e.g. a transport that holds some requests.
	mirrorOptions []mirror.Option
	// dashboard serves the dashboard on a free loopback port (Hub.Dashboard.URL).
	dashboard bool
	// log, when set, receives the hub's log instead of the test's.
	log *logr.Logger
}

func startFleet(t *testing.T, o fleetOptions) *fleet {
	t.Helper()
	g := NewWithT(t)
	f := &fleet{t: t, ns: hubNS}
	ctx := t.Context()
	if o.isolated {
		f.startOwn(o.members)
		g.Expect(f.hub.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}})).To(Succeed())
		f.backupRegistry = f.backup.Host + "/backups"
	} else {
		s := sharedFleet(t)
		g.Expect(o.members).To(BeNumerically("<=", len(s.members)), "the shared fleet has %d members", len(s.members))
		f.hub, f.members, f.upstream, f.backup = s.hub, s.members[:o.members], s.upstream, s.backup
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "hub-"}}
		g.Expect(f.hub.Client.Create(ctx, ns)).To(Succeed())
		f.ns = ns.Name
		f.backupRegistry = f.backup.Host + "/backups/" + ns.Name
		// Registered first, so it runs after the hub has stopped.
		t.Cleanup(func() { s.sweep(t) })
	}

	data := o.configData
	if data == nil {
		data = map[string]string{config.KeyBackupRegistry: f.backupRegistry}
	}
	g.Expect(f.hub.Client.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: v1alpha1.ConfigMapName}, Data: data,
	})).To(Succeed())
	if !o.noPushSecret {
		g.Expect(f.hub.Client.Create(ctx, f.pushSecret(f.backup.DockerConfigJSON()))).To(Succeed())
	}

	f.opts = o
	f.startHub()
	t.Cleanup(func() { f.stopHub() })
	return f
}

// startOwn starts a hub cluster, members and both registries for this test alone.
func (f *fleet) startOwn(members int) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		f.upstream = testenv.StartRegistry(f.t, testenv.RegistryOptions{Name: "upstream"})
	}()
	go func() {
		defer wg.Done()
		f.backup = testenv.StartRegistry(f.t, testenv.RegistryOptions{Name: "backup", Auth: true})
	}()
	cs := testenv.StartClusters(f.t, testenv.ClusterOptions{CRDs: true}, clusterNames(members)...)
	wg.Wait()
	f.hub, f.members = cs[0], cs[1:]
}

// clusterNames are the names of a hub cluster and n members.
func clusterNames(n int) []string {
	names := []string{"hub"}
	for i := range n {
		names = append(names, fmt.Sprintf("member%d", i+1))
	}
	return names
}

// startHub starts an in-process hub over the fleet, as startFleet's options say.
func (f *fleet) startHub() {
	t, o := f.t, f.opts
	g := NewWithT(t)
	f.metrics = prometheus.NewRegistry()
	log := testr.NewWithOptions(t, testr.Options{Verbosity: 0})
	if o.log != nil {
		log = *o.log
	}
	dashboardAddr := ""
	if o.dashboard {
		dashboardAddr = "127.0.0.1:0"
	}
	h, err := app.New(f.hub.Config, app.Options{
		DashboardBindAddress: dashboardAddr,
		MirrorOptions:        o.mirrorOptions,
		Namespace:            f.ns,
		LocalCluster:         o.local,
		Observer:             o.observer,
		Clusters: clusters.Options{
			ProbeInterval: 250 * time.Millisecond, ProbeTimeout: 2 * time.Second, FailureThreshold: 2,
			BackoffInitial: 250 * time.Millisecond, BackoffMax: 2 * time.Second,
		},
		MetricsRegistry: f.metrics,
		// Probe the backup registry often, so its gauge follows the test's changes quickly.
		BackupProbe:        backupprobe.Prober{Interval: 250 * time.Millisecond, Timeout: 2 * time.Second},
		Log:                log,
		SkipNameValidation: true,
	})
	g.Expect(err).NotTo(HaveOccurred())
	f.h = h
	mctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Manager.Start(mctx) }()
	f.stopHub = func() {
		cancel()
		<-done
	}
}

// restartHub stops the hub and starts a new one, which knows only what the clusters and
// registries hold.
func (f *fleet) restartHub() {
	f.stopHub()
	f.startHub()
}

// setConfig replaces the hub's ConfigMap data and waits until the hub has loaded it.
func setConfig(t *testing.T, f *fleet, data map[string]string) {
	t.Helper()
	g := NewWithT(t)
	var cm corev1.ConfigMap
	g.Expect(f.hub.Client.Get(t.Context(), client.ObjectKey{Namespace: f.ns, Name: v1alpha1.ConfigMapName}, &cm)).To(Succeed())
	cm.Data = data
	g.Expect(f.hub.Client.Update(t.Context(), &cm)).To(Succeed())
	want, err := config.Parse(data, f.ns)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(testenv.WaitFor(t.Context(), wait, func(context.Context) (bool, error) {
		cfg, _ := f.h.Settings.Current()
		return cfg != nil && cfg.TagRefreshInterval == want.TagRefreshInterval && cfg.VerifyInterval == want.VerifyInterval &&
			cfg.BackupRegistry == want.BackupRegistry, nil
	})).To(Succeed(), "the hub did not load the new configuration")
}

func (f *fleet) pushSecret(dockerConfig []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: config.DefaultPushSecretName},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig},
	}
}

// seed writes a random image to the upstream registry and returns its reference and digest.
func (f *fleet) seed(repoTag string) (string, v1.Hash) {
	f.t.Helper()
	g := NewWithT(f.t)
	img, err := random.Image(2048, 2)
	g.Expect(err).NotTo(HaveOccurred())
	ref, err := name.ParseReference(f.upstream.Host + "/" + repoTag)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(remote.Write(ref, img, remote.WithTransport(f.upstream.Transport()))).To(Succeed())
	d, err := img.Digest()
	g.Expect(err).NotTo(HaveOccurred())
	return ref.String(), d
}

// register registers member with the hub by a Secret in convention conv.
func (f *fleet) register(member *testenv.Cluster, conv registration.Convention) *corev1.Secret {
	f.t.Helper()
	s := member.RegistrationSecret(conv, f.ns)
	NewWithT(f.t).Expect(f.hub.Client.Create(f.t.Context(), s)).To(Succeed())
	return s
}

// status returns the Snapshot entry of cluster, or a zero Status.
func (f *fleet) status(cluster string) clusters.Status {
	for _, s := range f.h.Fleet.Snapshot() {
		if s.Cluster == cluster {
			return s
		}
	}
	return clusters.Status{}
}

func (f *fleet) waitState(cluster string, state clusters.State) {
	f.t.Helper()
	err := testenv.WaitFor(f.t.Context(), wait, func(context.Context) (bool, error) {
		return f.status(cluster).State == state, nil
	})
	NewWithT(f.t).Expect(err).NotTo(HaveOccurred(), "cluster %s never %s: %+v", cluster, state, f.h.Fleet.Snapshot())
}

// namespace creates a namespace with a generated name in c.
func namespace(t *testing.T, c *testenv.Cluster) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	NewWithT(t).Expect(c.Client.Create(t.Context(), ns)).To(Succeed())
	return ns.Name
}

func ensureNamespace(t *testing.T, c *testenv.Cluster, name string) {
	t.Helper()
	err := c.Client.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	NewWithT(t).Expect(client.IgnoreAlreadyExists(err)).To(Succeed())
}

func podSpec(images ...string) corev1.PodTemplateSpec {
	spec := corev1.PodSpec{}
	for i, image := range images {
		spec.Containers = append(spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: image})
	}
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}}, Spec: spec}
}

func deployment(ns, name string, images ...string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}},
			Template: podSpec(images...),
		},
	}
}

func daemonSet(ns, name string, images ...string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}},
			Template: podSpec(images...),
		},
	}
}

// clonedImage returns the ClonedImage of image in c, or nil.
func clonedImage(ctx context.Context, c *testenv.Cluster, image string) (*v1alpha1.ClonedImage, error) {
	ref, err := imageref.Parse(image)
	if err != nil {
		return nil, err
	}
	ci := &v1alpha1.ClonedImage{}
	err = c.Client.Get(ctx, client.ObjectKey{Name: imageref.ObjectName(ref)}, ci)
	if client.IgnoreNotFound(err) != nil {
		return nil, err
	}
	if err != nil {
		return nil, nil
	}
	return ci, nil
}

// waitPhase waits until image's ClonedImage in c has phase, and returns it.
func waitPhase(t *testing.T, c *testenv.Cluster, image string, phase v1alpha1.Phase) *v1alpha1.ClonedImage {
	t.Helper()
	var ci *v1alpha1.ClonedImage
	err := testenv.WaitFor(t.Context(), wait, func(ctx context.Context) (bool, error) {
		var err error
		ci, err = clonedImage(ctx, c, image)
		return ci != nil && ci.Status.Phase == phase, err
	})
	NewWithT(t).Expect(err).NotTo(HaveOccurred(), "ClonedImage of %s in %s never %s; last: %+v", image, c.Name, phase, ci)
	return ci
}

// series returns the values of the hub gauge or counter name by their label values (in label
// name order, joined with "/"); empty when it has no series.
func (f *fleet) series(name string) map[string]float64 {
	f.t.Helper()
	families, err := f.metrics.Gather()
	NewWithT(f.t).Expect(err).NotTo(HaveOccurred())
	out := map[string]float64{}
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
		for _, m := range fam.GetMetric() {
			var key []string
			for _, lp := range m.GetLabel() {
				key = append(key, lp.GetValue())
			}
			v := m.GetGauge().GetValue()
			if m.GetCounter() != nil {
				v = m.GetCounter().GetValue()
			}
			out[strings.Join(key, "/")] = v
		}
	}
	return out
}

// waitSeries waits until the hub's metric name has exactly want (as series returns it).
func (f *fleet) waitSeries(name string, want map[string]float64) {
	f.t.Helper()
	var got map[string]float64
	err := testenv.WaitFor(f.t.Context(), wait, func(context.Context) (bool, error) {
		got = f.series(name)
		return maps.Equal(got, want), nil
	})
	NewWithT(f.t).Expect(err).NotTo(HaveOccurred(), "%s: got %v, want %v", name, got, want)
}

// metric returns the value of the hub metric name with the given labels, 0 when absent.
func (f *fleet) metric(name string, labels map[string]string) float64 {
	f.t.Helper()
	families, err := f.metrics.Gather()
	NewWithT(f.t).Expect(err).NotTo(HaveOccurred())
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
	next:
		for _, m := range fam.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}
