// Package promrules checks the alerting rules image-cloner ships (the PrometheusRule objects
// of deploy/monitoring) against the metrics the hub and the agent really export, so that a
// renamed metric or label breaks a test instead of an alert: every metric selector of every
// rule, every label it matches or groups by, and every input series of the rules' promtool
// unit tests must be one a registry of the real binary describes (or a target label the
// scrape adds). It also reads and writes the files promtool takes, and finds promtool
// (hack/promtool.sh builds it). Tests use it; the binaries do not.
//
// Expressions are parsed with VictoriaMetrics' metricsql, a standalone parser of a superset of
// PromQL: github.com/prometheus/prometheus's own parser would bring Prometheus's dependency graph
// (newer k8s.io modules among them) into this module. promtool, built from Prometheus itself,
// checks that the rules are valid PromQL.
package promrules
