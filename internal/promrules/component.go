package promrules

import (
	"fmt"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
)

// Component is one binary's side of the check: what its metrics endpoint serves, and the
// alert rules and promtool unit tests shipped for it in deploy/monitoring.
type Component struct {
	Inventory Inventory
	Rules     *PrometheusRule
	Tests     *UnitTests
}

// LoadComponent merges what rec recorded from the binary's own registry with what shared
// serves beside it (controller-runtime's registry), and loads deploy/monitoring/<name>'s
// prometheusrule.yaml and deploy/monitoring/tests/<name>.test.yaml.
func LoadComponent(rec *Recorder, shared prometheus.Gatherer, name string) (*Component, error) {
	own, err := rec.Inventory()
	if err != nil {
		return nil, fmt.Errorf("reading the %s's own metrics: %w", name, err)
	}
	served, err := Gathered(shared)
	if err != nil {
		return nil, fmt.Errorf("reading the metrics served beside the %s's: %w", name, err)
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	rules, err := LoadPrometheusRule(filepath.Join(root, "deploy", "monitoring", name, "prometheusrule.yaml"))
	if err != nil {
		return nil, err
	}
	tests, err := LoadUnitTests(filepath.Join(root, "deploy", "monitoring", "tests", name+".test.yaml"))
	if err != nil {
		return nil, err
	}
	return &Component{Inventory: Merge(own, served), Rules: rules, Tests: tests}, nil
}

// Problems returns what is wrong between the component's rules and its metrics: labels
// Prometheus would rename (exported_*), selectors of metrics or labels it does not export,
// and unit-test input series it would never serve. Empty when the rules can work.
func (c *Component) Problems() []string {
	var out []string
	for _, p := range Collisions(c.Inventory) {
		out = append(out, "label Prometheus would rename to exported_*: "+p)
	}
	out = append(out, Check(c.Rules.Spec, c.Inventory)...)
	return append(out, CheckSeries(c.Tests.Series(), c.Inventory)...)
}

// Without returns the component as if it did not export metric: what its rules would meet
// after a rename, for a check's negative control.
func (c *Component) Without(metric string) *Component {
	return &Component{Inventory: c.Inventory.Without(metric), Rules: c.Rules, Tests: c.Tests}
}
