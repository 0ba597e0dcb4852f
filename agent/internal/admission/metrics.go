package admission

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Results counted in image_cloner_admission_requests_total.
const (
	resultAllowed  = "allowed"  // every image backed up, or nothing to rewrite
	resultDenied   = "denied"   // enforce mode refused it
	resultWarned   = "warned"   // warn mode admitted it with warnings
	resultMutated  = "mutated"  // images rewritten to backups
	resultExcluded = "excluded" // namespace not ours to judge
	resultUnjudged = "unjudged" // could not judge (configuration, cache): admitted
	resultFallback = "fallback" // a Pod kept upstream images: their backup registry is down
)

var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "image_cloner_admission_requests_total",
		Help: "Admission requests handled by image-cloner's webhooks, by webhook (validate, mutate), kind and result.",
	}, []string{"webhook", "kind", "result"})
	copiesRequestedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "image_cloner_copies_requested_total",
		Help: "Pending ClonedImages created by the validating webhook for images without a backup.",
	})
	backupUnavailableTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "image_cloner_admission_backup_unavailable_total",
		Help: "Pods admitted with their upstream images because the backup registry they would have been pointed at did not answer, by registry.",
	}, []string{"registry"})
)

func init() {
	metrics.Registry.MustRegister(requestsTotal, copiesRequestedTotal, backupUnavailableTotal)
}
