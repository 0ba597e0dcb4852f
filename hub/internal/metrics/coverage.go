package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/image-cloner/image-cloner/hub/internal/images"
)

// containersDesc is computed at every scrape, like imagesDesc, so a member that goes away takes
// its series with it.
var containersDesc = prometheus.NewDesc("image_cloner_containers",
	"Running containers in each connected member cluster, by where their image comes from: state=backup, or upstream and why (not-copied-yet, failed, ignored-by-rule, namespace-ignored, opted-out, owner-not-patchable, not-patched-yet); read from the hub's cache of the member's Pods at scrape time; every state is reported, 0 included.",
	[]string{"cluster", "state"}, nil)

type coverageCollector struct {
	coverage func(context.Context) ([]images.Coverage, error)
}

func (c coverageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- containersDesc }

func (c coverageCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// A member that could not be read has no series this scrape; the others are reported.
	cov, _ := c.coverage(ctx)
	for _, m := range cov {
		for _, s := range images.ContainerStates {
			ch <- prometheus.MustNewConstMetric(containersDesc, prometheus.GaugeValue, float64(m.Containers[s]), m.Cluster, string(s))
		}
	}
}

// Coverage registers image_cloner_containers{cluster,state}, computed at every scrape by
// coverage (e.g. (*images.Reconciler).Coverage).
func (m *Metrics) Coverage(coverage func(context.Context) ([]images.Coverage, error)) error {
	return m.reg.Register(coverageCollector{coverage: coverage})
}
