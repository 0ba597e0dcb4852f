package metrics

import (
	"context"
	"runtime/metrics"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
)

// cachedObjectsDesc is computed at every scrape from the members' caches.
var cachedObjectsDesc = prometheus.NewDesc("image_cloner_cached_objects",
	"Objects held in each member cluster's cache, by kind: the hub's memory grows with these. Every registration has a cache of its own, even when several point at the same API server.",
	[]string{"cluster", "kind"}, nil)

// cacheCollector reports clusters.Fleet.CacheSizes at scrape time, so it is never stale and
// a disconnected member's series go away with it.
type cacheCollector struct {
	sizes func(context.Context) []clusters.CacheSize
}

func (c cacheCollector) Describe(ch chan<- *prometheus.Desc) { ch <- cachedObjectsDesc }

func (c cacheCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.sizes(context.Background()) {
		ch <- prometheus.MustNewConstMetric(cachedObjectsDesc, prometheus.GaugeValue, float64(s.Objects), s.Cluster, s.Kind)
	}
}

// CacheSizes registers image_cloner_cached_objects{cluster,kind}, read from sizes (e.g.
// (*clusters.Fleet).CacheSizes) at every scrape.
func (m *Metrics) CacheSizes(sizes func(context.Context) []clusters.CacheSize) error {
	return m.reg.Register(cacheCollector{sizes: sizes})
}

// heapLiveSample is the Go runtime's count of heap bytes marked live by the last garbage
// collection. Unlike go_memstats_heap_inuse_bytes it leaves out garbage not yet collected, so
// it is what to divide by cached objects to get memory per object.
const heapLiveSample = "/gc/heap/live:bytes"

func heapLive() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "image_cloner_heap_live_bytes",
		Help: "Heap bytes marked live by the last garbage collection (Go runtime/metrics " + heapLiveSample + "): the hub's memory without the garbage awaiting collection.",
	}, func() float64 {
		s := []metrics.Sample{{Name: heapLiveSample}}
		metrics.Read(s)
		if s[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return float64(s[0].Value.Uint64())
	})
}
