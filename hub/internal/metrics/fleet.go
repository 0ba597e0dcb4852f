package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// clusterConnectedDesc and imagesDesc are computed at every scrape from the hub's view of the
// fleet, so a registration that goes away takes its series with it: a gauge set on state
// changes would keep a deleted member "disconnected" (and alerting) until the hub restarts.
var (
	clusterConnectedDesc = prometheus.NewDesc("image_cloner_cluster_connected",
		"1 when the hub is connected to the registered member cluster (its cache synced, its probes answered), else 0; one series per registration that names a cluster, gone when the registration is deleted.",
		[]string{"cluster"}, nil)
	imagesDesc = prometheus.NewDesc("image_cloner_images",
		"ClonedImages in each connected member cluster, by phase (Pending, Cloning, Ready, Failed), read from the hub's cache of the member at scrape time; every phase is reported, 0 included.",
		[]string{"cluster", "phase"}, nil)
)

// Phases are the values of image_cloner_images' phase label, every one reported for each
// connected member.
var Phases = []v1alpha1.Phase{v1alpha1.PhasePending, v1alpha1.PhaseCloning, v1alpha1.PhaseReady, v1alpha1.PhaseFailed}

// fleetCollector reports the registrations' states and the members' ClonedImages by phase.
type fleetCollector struct {
	snapshot func() []clusters.Status
	members  func() []*clusters.Member
}

func (c fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- clusterConnectedDesc
	ch <- imagesDesc
}

func (c fleetCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[string]bool{}
	for _, s := range c.snapshot() {
		// A Secret too broken to name a cluster has no series (its Event says what is wrong),
		// and two registrations of one name (the second is Invalid) report the first's state.
		if s.Cluster == "" || seen[s.Cluster] {
			continue
		}
		seen[s.Cluster] = true
		v := 0.0
		if s.State == clusters.Connected {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(clusterConnectedDesc, prometheus.GaugeValue, v, s.Cluster)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, m := range c.members() {
		counts, ok := phaseCounts(ctx, m)
		if !ok {
			continue
		}
		for _, p := range Phases {
			ch <- prometheus.MustNewConstMetric(imagesDesc, prometheus.GaugeValue, float64(counts[p]), m.Name, string(p))
		}
	}
}

// Fleet registers image_cloner_cluster_connected{cluster} and image_cloner_images{cluster,phase},
// computed at every scrape from snapshot (e.g. (*clusters.Fleet).Snapshot) and the connected
// members (e.g. (*clusters.Fleet).Members).
func (m *Metrics) Fleet(snapshot func() []clusters.Status, members func() []*clusters.Member) error {
	return m.reg.Register(fleetCollector{snapshot: snapshot, members: members})
}

// phaseCounts counts m's cached ClonedImages by phase (an empty phase is Pending: the agent
// creates ClonedImages without status); false when m's cache has no ClonedImage informer.
func phaseCounts(ctx context.Context, m *clusters.Member) (map[v1alpha1.Phase]int, bool) {
	// The cache's own objects: counting phases costs no allocation per ClonedImage at each scrape.
	objs, err := m.CachedObjects(ctx, &v1alpha1.ClonedImage{}, cache.BlockUntilSynced(false))
	if err != nil {
		return nil, false
	}
	counts := map[v1alpha1.Phase]int{}
	for _, o := range objs {
		ci, ok := o.(*v1alpha1.ClonedImage)
		if !ok {
			continue
		}
		p := ci.Status.Phase
		if p == "" {
			p = v1alpha1.PhasePending
		}
		counts[p]++
	}
	return counts, true
}
