package app_test

import (
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/image-cloner/image-cloner/hub/internal/app"
	"github.com/image-cloner/image-cloner/internal/promrules"
	"github.com/image-cloner/image-cloner/internal/testenv"
)

// TestMetrics_rulesUseExportedMetrics builds the hub as main.go does, with a registry that
// records every collector it registers, and checks deploy/monitoring's hub rules against what
// it exports: each metric and label a rule uses, each input series of the rules' promtool tests
// (named and labelled exactly as a scrape of the hub gives them). Then, for every metric the
// rules use, the same check with that metric renamed in the hub must fail.
func TestMetrics_rulesUseExportedMetrics(t *testing.T) {
	g := NewWithT(t)
	hub := testenv.StartCluster(t, testenv.ClusterOptions{Name: "metrics"})
	rec := &promrules.Recorder{Next: prometheus.NewRegistry()}
	_, err := app.New(hub.Config, app.Options{MetricsRegistry: rec, SkipNameValidation: true})
	g.Expect(err).NotTo(HaveOccurred())
	c, err := promrules.LoadComponent(rec, ctrlmetrics.Registry, "hub")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.Problems()).To(BeEmpty())

	used := usedMetrics(t, c.Rules.Spec)
	g.Expect(used).To(ContainElements("image_cloner_cluster_connected", "image_cloner_images", "image_cloner_backup_registry_up",
		"image_cloner_copy_queue_depth", "image_cloner_copies_total", "image_cloner_pull_limit", "image_cloner_pull_limit_remaining"))
	for _, m := range used {
		problems := c.Without(m).Problems()
		notExported := ContainSubstring("metric " + m + " is not exported")
		g.Expect(problems).To(ContainElement(And(HavePrefix("group "), notExported)), "renaming %s: in the rules", m)
		g.Expect(problems).To(ContainElement(And(HavePrefix("input series "), notExported)), "renaming %s: in the tests' series", m)
	}

	// The Grafana dashboard queries what the hub exports, and only that.
	root, err := promrules.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	dashboard, err := promrules.LoadGrafanaDashboard(filepath.Join(root, "deploy", "monitoring", "grafana", "image-cloner-hub.json"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(promrules.Check(dashboard, c.Inventory)).To(BeEmpty())
	for _, m := range usedMetrics(t, dashboard) {
		g.Expect(promrules.Check(dashboard, c.Without(m).Inventory)).To(ContainElement(ContainSubstring("metric "+m+" is not exported")), "renaming %s: in the dashboard", m)
	}
}

// usedMetrics returns the metric names the rules select.
func usedMetrics(t *testing.T, f promrules.RuleFile) []string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	for _, gr := range f.Groups {
		for _, r := range gr.Rules {
			selectors, _, err := promrules.Parse(r.Expr)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range selectors {
				if !seen[s.Metric] {
					seen[s.Metric] = true
					out = append(out, s.Metric)
				}
			}
		}
	}
	return out
}
