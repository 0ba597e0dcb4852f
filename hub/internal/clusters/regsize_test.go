package clusters

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/go-logr/logr"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cluster"

	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/internal/testenv"
)

// What one registration costs the hub with an empty cache, the figure issue 14 targets (under
// 200 KiB): registrations of one kube-apiserver (envtest, the project's CRDs), each connected
// as the hub connects a member (conn.serve: probes, clients, a cache of every CachedKinds
// kind with its projection), each kind with one event handler as the images reconciler adds.
// The figure is the live heap and goroutines after a GC, per registration, between
// registrations/10 and registrations:
//
//	go test -run '^$' -bench RegistrationHeap -benchtime 1x ./hub/internal/clusters/
//
// REGISTRATION_HEAP_PROFILE=<file> writes the heap profile at the end (go tool pprof -sample_index=inuse_space).
//
// Measured on 2026-12-07 (2 shared cores, 100 registrations of one API server):
//
//	                                    live heap / registration   goroutines / registration
//	controller-runtime's mapper         641,358 B                  100.1
//	hubKinds, discovery only on a miss  361,346 B                  100.1
//
// Of what is left, about 16 KiB per watched kind is client-go's event-handler ring buffer
// (1,024 slots, fixed in tools/cache); the goroutines are client-go's and controller-runtime's
// per informer (reflector, processor, listener, watch stream), about 14 for each of 7 kinds.
func BenchmarkRegistrationHeap(b *testing.B) {
	const registrations = 100
	cl := testenv.StartCluster(b, testenv.ClusterOptions{Name: "registrations", CRDs: true})
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithCancel(b.Context())
		f := New(testenv.Scheme(), nil, logr.Discard(), Options{})
		f.AddListener(handlerPerKind{})
		go func() { _ = f.Start(ctx) }()
		heap := func(n int) (uint64, int) {
			for j := range n {
				name := fmt.Sprintf("r%04d", j)
				if _, ok := f.conns["hub/"+name]; ok {
					continue
				}
				if err := f.connect(secret(name), &registration.Registration{Cluster: name, Config: cl.Config}, "h"); err != nil {
					b.Fatal(err)
				}
			}
			deadline := time.Now().Add(5 * time.Minute)
			for len(f.Members()) < n {
				if time.Now().After(deadline) {
					b.Fatalf("%d of %d registrations connected", len(f.Members()), n)
				}
				time.Sleep(100 * time.Millisecond)
			}
			time.Sleep(2 * time.Second) // let the watches settle
			var ms runtime.MemStats
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&ms)
			return ms.HeapAlloc, runtime.NumGoroutine()
		}
		h0, g0 := heap(registrations / 10)
		h1, g1 := heap(registrations)
		n := float64(registrations - registrations/10)
		b.ReportMetric(float64(h1-h0)/n, "live-B/registration")
		b.ReportMetric(float64(g1-g0)/n, "goroutines/registration")
		if path := os.Getenv("REGISTRATION_HEAP_PROFILE"); path != "" {
			out, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			if err := pprof.Lookup("heap").WriteTo(out, 0); err != nil {
				b.Fatal(err)
			}
			_ = out.Close()
		}
		cancel()
	}
}

// handlerPerKind adds one event handler to every cached kind of a member, as the images
// reconciler does (images.Reconciler.Connected).
type handlerPerKind struct{}

func (handlerPerKind) Prepare(cluster.Cluster) error { return nil }

func (handlerPerKind) Connected(ctx context.Context, m *Member) {
	for _, obj := range CachedKinds() {
		inf, err := m.Cluster.GetCache().GetInformer(ctx, obj)
		if err != nil {
			continue
		}
		_, _ = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{})
	}
}

func (handlerPerKind) Disconnected(string) {}
