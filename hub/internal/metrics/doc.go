// Package metrics defines the hub's Prometheus metrics, registered on controller-runtime's
// registry (served on --metrics-bind-address), and the hooks that feed them: a mirror.Observer
// for copies, bytes and pull quotas, the image reconciler's hooks, the backup registry probe's
// results, and collectors that read the fleet at scrape time (registrations, ClonedImages by
// phase, cache sizes, running containers by coverage state), so what a scrape shows is never staler than the hub's own view.
//
// deploy/monitoring's alerts use these names and labels; hub/internal/app's
// TestMetrics_rulesUseExportedMetrics fails when one they use is renamed.
package metrics
