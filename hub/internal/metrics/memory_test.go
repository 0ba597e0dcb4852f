package metrics

import (
	"context"
	"errors"
	"runtime"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/hub/internal/images"
)

func TestCacheSizes_reportsEachMembersCacheAtScrapeTime(t *testing.T) {
	g := NewWithT(t)
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	g.Expect(err).NotTo(HaveOccurred())
	sizes := []clusters.CacheSize{{Cluster: "a", Kind: "Deployment", Objects: 3}, {Cluster: "b", Kind: "DaemonSet", Objects: 4}}
	g.Expect(m.CacheSizes(func(context.Context) []clusters.CacheSize { return sizes })).To(Succeed())

	g.Expect(gather(g, reg, "image_cloner_cached_objects")).To(Equal(map[string]float64{"a/Deployment": 3, "b/DaemonSet": 4}))

	// A member that went away is gone at the next scrape, not left at its last value.
	sizes = sizes[1:]
	g.Expect(gather(g, reg, "image_cloner_cached_objects")).To(Equal(map[string]float64{"b/DaemonSet": 4}))
}

// gather returns the gauge name's values by their label values joined with "/".
func gather(g Gomega, reg *prometheus.Registry, name string) map[string]float64 {
	mfs, err := reg.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := ""
			for i, l := range m.GetLabel() {
				if i > 0 {
					key += "/"
				}
				key += l.GetValue()
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

func TestHeapLive_isTheRuntimesLiveHeap(t *testing.T) {
	g := NewWithT(t)
	reg := prometheus.NewRegistry()
	_, err := New(reg)
	g.Expect(err).NotTo(HaveOccurred())
	// Something that stays live, then a collection: the gauge counts it.
	keep := make([]byte, 8<<20)
	runtime.GC()
	g.Expect(gather(g, reg, "image_cloner_heap_live_bytes")[""]).To(BeNumerically(">=", len(keep)))
	runtime.KeepAlive(keep)
}

func TestCoverage_reportsEveryStateOfEachMemberAtScrapeTime(t *testing.T) {
	g := NewWithT(t)
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	g.Expect(err).NotTo(HaveOccurred())
	cov := []images.Coverage{{Cluster: "east", Containers: map[images.ContainerState]int{images.FromBackup: 5, images.CopyFailed: 2}}}
	var coverErr error
	g.Expect(m.Coverage(func(context.Context) ([]images.Coverage, error) { return cov, coverErr })).To(Succeed())

	want := map[string]float64{}
	for _, s := range images.ContainerStates {
		want["east/"+string(s)] = 0
	}
	want["east/backup"], want["east/failed"] = 5, 2
	g.Expect(gather(g, reg, "image_cloner_containers")).To(Equal(want))

	// A member that could not be read is left out; the others stay.
	cov, coverErr = nil, errors.New("cluster east: disconnected")
	g.Expect(gather(g, reg, "image_cloner_containers")).To(BeEmpty())
}
