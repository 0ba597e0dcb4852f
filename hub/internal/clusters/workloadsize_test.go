package clusters

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// BenchmarkInformerWorkloads measures what a cached workload costs on real informers, as
// BenchmarkInformerPods does for Pods: a controller-runtime cache, as a member connection
// builds it, lists and watches workloadCount Deployments from a kube-apiserver (envtest), with
// managed fields stripped (the typed objects) and as ProjectWorkload keeps them (*Workload),
// both with the hub's index by image; the figure is the live heap the synced cache holds per
// Deployment, less what a cache of no Deployments holds (informerHeap). Run it with
// -benchtime 1x: each iteration builds and syncs two caches.
//
//	go test -run '^$' -bench 'InformerWorkloads' -benchtime 1x ./hub/internal/clusters/
//
// Measured on 2026-12-08 (2 shared cores): 6,719 B per Deployment with managed fields
// stripped, 625 B as a *Workload (783 B while it embedded metav1.ObjectMeta).
func BenchmarkInformerWorkloads(b *testing.B) {
	const workloadCount = 1000
	cl := testenv.StartCluster(b, testenv.ClusterOptions{Name: "informer-workloads"})
	for _, name := range []string{"fleet-3", "empty"} {
		if err := cl.Client.Create(b.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range workloadCount {
		if err := cl.Client.Create(b.Context(), fleetDeployment("fleet-3", fmt.Sprintf("w1-%05d", i))); err != nil {
			b.Fatal(err)
		}
	}
	images := func(o client.Object) []string {
		if w, ok := o.(*Workload); ok {
			return w.Images()
		}
		return workload.Images(o)
	}
	informerCases(b, cl.Config, &appsv1.Deployment{}, ProjectWorkload, workloadCount, images, "live-B/workload")
}

// informerCases runs informerHeap on kind, want objects of it in the namespace fleet-3, with
// managed fields stripped and with transform, and reports each figure as unit.
func informerCases(b *testing.B, cfg *rest.Config, kind client.Object, transform toolscache.TransformFunc, want int, images IndexFunc, unit string) {
	for _, tc := range []struct {
		name     string
		byObject map[client.Object]cache.ByObject
	}{
		{name: "managed-fields-stripped"},
		{name: "projected", byObject: map[client.Object]cache.ByObject{kind: {Transform: transform}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.ReportMetric(informerHeap(b, cfg, kind, tc.byObject, "fleet-3", want, images, "127.0.0.1:5001/backup/fleet_app-017:1.17"), unit)
			}
		})
	}
}

// informerHeap returns the live heap per object of a synced controller-runtime cache of kind
// over namespace, which holds want objects, one of whose images is image: what a cache over
// namespace holds, less what a cache over the namespace "empty" holds, divided by want. The
// difference leaves out what every cache costs whatever it holds (its REST mapper, HTTP/2
// connection, informer): the per-object slope, as the fleet benchmark measures it.
func informerHeap(b *testing.B, cfg *rest.Config, kind client.Object, byObject map[client.Object]cache.ByObject, namespace string, want int, images IndexFunc, image string) float64 {
	b.Helper()
	log.SetLogger(logr.Discard()) // controller-runtime's delegating logger keeps what is logged before one is set
	// Two collections: the first moves what sync.Pools hold (HTTP/2's read buffers of the
	// list) to their victim caches, the second frees it.
	gc := func() { runtime.GC(); runtime.GC() }
	heap := func(namespace string, want int) int64 {
		var before, after runtime.MemStats
		gc()
		runtime.ReadMemStats(&before)
		// A field selector, not DefaultNamespaces, which would make a multi-namespace informer.
		c, err := cache.New(cfg, cache.Options{Scheme: testenv.Scheme(), DefaultFieldSelector: fields.OneTermEqualSelector("metadata.namespace", namespace),
			DefaultTransform: cache.TransformStripManagedFields(), ByObject: byObject})
		if err != nil {
			b.Fatal(err)
		}
		m := &Member{Cluster: cacheOnly{c: c}}
		if err := AddIndex(b.Context(), m.Cluster, kind, "image-cloner.io/images", images); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(b.Context())
		done := make(chan error, 1)
		go func() { done <- c.Start(ctx) }()
		defer func() { cancel(); <-done }()
		if !c.WaitForCacheSync(ctx) {
			b.Fatal("the cache did not sync")
		}
		if n, err := m.CachedCount(ctx, kind); err != nil || n != want {
			b.Fatalf("the cache of %s holds %d objects (%v), want %d", namespace, n, err, want)
		}
		// The index answers as the hub reads it.
		if objs, err := m.CachedByIndex(ctx, kind, "image-cloner.io/images", image); err != nil || len(objs) != want {
			b.Fatalf("the index of %s holds %d objects for %s (%v), want %d", namespace, len(objs), image, err, want)
		}
		gc()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(c)
		return int64(after.HeapAlloc) - int64(before.HeapAlloc)
	}
	empty := heap("empty", 0)
	full := heap(namespace, want)
	return float64(full-empty) / float64(want)
}

// fleetDeployment is a Deployment as the fleet runs them once the agent has patched it: two
// containers on backup images with resources, a port, an env var and a probe, the original
// images recorded, a pull secret.
func fleetDeployment(ns, name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	container := func(name, image string) corev1.Container {
		return corev1.Container{Name: name, Image: image,
			Resources:      corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}},
			Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			Env:            []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}},
		}
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app.kubernetes.io/part-of": "fleet"},
			Annotations: map[string]string{workload.OriginalImagesAnnotation: `{"containers/app":"127.0.0.1:5000/fleet/app-001:1.1","containers/sidecar":"127.0.0.1:5000/fleet/app-017:1.17"}`}},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers:       []corev1.Container{container("app", "127.0.0.1:5001/backup/fleet_app-001:1.1"), container("sidecar", "127.0.0.1:5001/backup/fleet_app-017:1.17")},
					ImagePullSecrets: []corev1.LocalObjectReference{{Name: "image-cloner-pull"}},
				},
			},
		},
	}
}

// cacheOnly is a cluster.Cluster that has only a cache: what the cached reads use.
type cacheOnly struct {
	cluster.Cluster
	c cache.Cache
}

func (c cacheOnly) GetCache() cache.Cache { return c.c }
