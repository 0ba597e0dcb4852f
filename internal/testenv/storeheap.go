package testenv

import (
	"runtime"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/serializer"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// StoreHeap measures what one object costs in a client-go store like a controller-runtime
// cache's: b.N copies of data (the API server's JSON of one object) are decoded into a new
// object, made distinct and shaped by keep (rename it by i, drop or project fields), and
// added to a store with indexers. It reports the live heap that grew, per object
// ("live-B/object"), and the JSON's size ("json-B/object").
func StoreHeap(b *testing.B, data []byte, newObj func() client.Object, indexers toolscache.Indexers, keep func(obj client.Object, i int) (any, error)) {
	b.Helper()
	decoder := serializer.NewCodecFactory(Scheme()).UniversalDeserializer()
	store := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, indexers)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < b.N; i++ {
		obj, _, err := decoder.Decode(data, nil, newObj())
		if err != nil {
			b.Fatal(err)
		}
		kept, err := keep(obj.(client.Object), i)
		if err != nil {
			b.Fatal(err)
		}
		if err := store.Add(kept); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(b.N), "live-B/object")
	b.ReportMetric(float64(len(data)), "json-B/object")
	runtime.KeepAlive(store)
}
