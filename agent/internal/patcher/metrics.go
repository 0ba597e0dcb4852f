package patcher

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// containersPatchedTotal counts containers pointed at a backup, by workload kind.
var containersPatchedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "image_cloner_containers_patched_total",
	Help: "Containers of workloads the agent pointed at their backups, by workload kind.",
}, []string{"kind"})

func init() {
	metrics.Registry.MustRegister(containersPatchedTotal)
}
