package promrules_test

import (
	"testing"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/image-cloner/image-cloner/internal/promrules"
)

func TestParse_findsEverySelectorAndGrouping(t *testing.T) {
	cases := []struct {
		expr      string
		selectors []promrules.Selector
		groupings []promrules.Grouping
		wantErr   string
	}{
		{expr: `max by (namespace, cluster) (image_cloner_cluster_connected) == 0`,
			selectors: []promrules.Selector{{Metric: "image_cloner_cluster_connected"}},
			groupings: []promrules.Grouping{{Modifier: "by", Labels: []string{"namespace", "cluster"}, Over: []promrules.Selector{{Metric: "image_cloner_cluster_connected"}}}}},
		{expr: `sum without (pod) (image_cloner_images{phase="Failed",cluster!~"dev-.*"}) > 0`,
			selectors: []promrules.Selector{{Metric: "image_cloner_images", Labels: []string{"cluster", "phase"}}},
			groupings: []promrules.Grouping{{Modifier: "without", Labels: []string{"pod"}, Over: []promrules.Selector{{Metric: "image_cloner_images", Labels: []string{"cluster", "phase"}}}}}},
		{expr: "a > 0\nunless on (namespace, pod)\nsum by (pod) (increase(b_total[15m])) > 0",
			selectors: []promrules.Selector{{Metric: "a"}, {Metric: "b_total"}},
			groupings: []promrules.Grouping{
				{Modifier: "by", Labels: []string{"pod"}, Over: []promrules.Selector{{Metric: "b_total"}}},
				{Modifier: "on", Labels: []string{"namespace", "pod"}, Over: []promrules.Selector{{Metric: "a"}, {Metric: "b_total"}}},
			}},
		{expr: `x / on (registry) group_left (pod) y`,
			selectors: []promrules.Selector{{Metric: "x"}, {Metric: "y"}},
			groupings: []promrules.Grouping{
				{Modifier: "on", Labels: []string{"registry"}, Over: []promrules.Selector{{Metric: "x"}, {Metric: "y"}}},
				{Modifier: "group_left", Labels: []string{"pod"}, Over: []promrules.Selector{{Metric: "x"}, {Metric: "y"}}},
			}},
		{expr: `min(cert_expiry) - time() < 14 * 24 * 3600`, selectors: []promrules.Selector{{Metric: "cert_expiry"}}},
		{expr: `rate(errors_total{reason="X"}[5m] offset 1h)`, selectors: []promrules.Selector{{Metric: "errors_total", Labels: []string{"reason"}}}},
		{expr: `{job="hub"}`, wantErr: "a selector without a metric name cannot be checked"},
		{expr: `sum(x`, wantErr: "parsing"},
	}
	for _, c := range cases {
		t.Run(c.expr, func(t *testing.T) {
			g := NewWithT(t)
			s, gr, err := promrules.Parse(c.expr)
			if c.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(c.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(s).To(Equal(c.selectors))
			g.Expect(gr).To(ConsistOf(c.groupings))
		})
	}
}

func TestParseDesc_readsNameAndLabels(t *testing.T) {
	cases := []struct {
		name      string
		collector prometheus.Collector
		want      promrules.Inventory
	}{
		{"a counter", prometheus.NewCounter(prometheus.CounterOpts{Name: "a_total", Help: `with "quotes" and \ a backslash`}), promrules.Inventory{"a_total": {}}},
		{"a vector", prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "b", Help: "b"}, []string{"cluster", "phase"}), promrules.Inventory{"b": {"cluster", "phase"}}},
		{"constant labels", prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "c", Help: "c", ConstLabels: prometheus.Labels{"side": "a,b}\""}}, []string{"x"}), promrules.Inventory{"c": {"side", "x"}}},
		{"constrained labels", prometheus.V2.NewCounterVec(prometheus.CounterVecOpts{CounterOpts: prometheus.CounterOpts{Name: "d_total", Help: "d"},
			VariableLabels: prometheus.ConstrainedLabels{{Name: "kind", Constraint: func(s string) string { return s }}, {Name: "result"}}}), promrules.Inventory{"d_total": {"kind", "result"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			r := &promrules.Recorder{Next: prometheus.NewRegistry()}
			g.Expect(r.Register(c.collector)).To(Succeed())
			g.Expect(r.Inventory()).To(Equal(c.want))
		})
	}
}

// TestRecorder_knowsVectorsAScrapeDoesNotShow is why the hub's and agent's inventories come
// from their registered collectors: a vector with no label value observed yet has no series.
func TestRecorder_knowsVectorsAScrapeDoesNotShow(t *testing.T) {
	g := NewWithT(t)
	reg := prometheus.NewRegistry()
	r := &promrules.Recorder{Next: reg}
	r.MustRegister(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "copies_total", Help: "h"}, []string{"result"}))
	g.Expect(promrules.Gathered(reg)).To(BeEmpty())
	g.Expect(r.Inventory()).To(Equal(promrules.Inventory{"copies_total": {"result"}}))

	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "took_seconds", Help: "h"}, []string{"op"})
	h.WithLabelValues("copy").Observe(1)
	g.Expect(reg.Register(h)).To(Succeed())
	g.Expect(promrules.Gathered(reg)).To(Equal(promrules.Inventory{
		"took_seconds_bucket": {"le", "op"}, "took_seconds_sum": {"op"}, "took_seconds_count": {"op"},
	}))
}

var inventory = promrules.Inventory{
	"image_cloner_cluster_connected": {"cluster"},
	"image_cloner_images":            {"cluster", "phase"},
}

func TestCheck_reportsWhatTheRulesUseAndNoOneExports(t *testing.T) {
	rules := func(expr string) promrules.RuleFile {
		return promrules.RuleFile{Groups: []promrules.Group{{Name: "g", Rules: []promrules.Rule{{Alert: "A", Expr: expr}}}}}
	}
	cases := []struct {
		name string
		expr string
		inv  promrules.Inventory
		want []string
	}{
		{name: "exported metrics, labels and target labels", inv: inventory,
			expr: `max by (namespace, cluster) (image_cloner_cluster_connected{pod!=""}) == 0 or image_cloner_images{phase="Failed"} > 0`},
		{name: "a metric renamed in the code", inv: inventory.Without("image_cloner_cluster_connected"),
			expr: `max by (namespace, cluster) (image_cloner_cluster_connected) == 0`,
			want: []string{"group g, rule A: metric image_cloner_cluster_connected is not exported"}},
		{name: "a label renamed in the code", inv: promrules.Inventory{"image_cloner_cluster_connected": {"member"}},
			expr: `max by (namespace, cluster) (image_cloner_cluster_connected) == 0`,
			want: []string{`group g, rule A: by (namespace, cluster) uses label "cluster", which none of image_cloner_cluster_connected has`}},
		{name: "a metric misspelt in the rule", inv: inventory, expr: `image_cloner_image{phase="Failed"} > 0`,
			want: []string{"group g, rule A: metric image_cloner_image is not exported"}},
		{name: "a label it does not have", inv: inventory, expr: `image_cloner_images{state="Failed"} > 0`,
			want: []string{`group g, rule A: metric image_cloner_images has no label "state" (it has cluster, phase)`}},
		{name: "grouped by a label none of them has", inv: inventory, expr: `sum by (member) (image_cloner_images) > 0`,
			want: []string{`group g, rule A: by (member) uses label "member", which none of image_cloner_images has`}},
		{name: "matched on a label only the other side has", inv: inventory, expr: `image_cloner_images and on (phase) image_cloner_cluster_connected`},
		{name: "not PromQL", inv: inventory, expr: `image_cloner_images >`, want: []string{`group g, rule A: parsing "image_cloner_images >": `}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			got := promrules.Check(rules(c.expr), c.inv)
			g.Expect(got).To(HaveLen(len(c.want)), "%q", got)
			for i := range c.want {
				g.Expect(got[i]).To(HavePrefix(c.want[i]))
			}
		})
	}
}

func TestCheckSeries_wantsExactlyWhatAScrapeGives(t *testing.T) {
	const target = `namespace="ns",pod="p",job="ns/hub",instance="10.0.0.1:8080",container="hub",endpoint="metrics"`
	cases := []struct {
		name   string
		series string
		want   string
	}{
		{"as exported and scraped", `image_cloner_images{cluster="m",phase="Failed",` + target + `}`, ""},
		{"an exported label missing", `image_cloner_images{phase="Failed",` + target + `}`, "labels container,endpoint,instance,job,namespace,phase,pod, want cluster,container,"},
		{"a label the metric has not", `image_cloner_cluster_connected{cluster="m",phase="x",` + target + `}`, "labels cluster,container,endpoint,instance,job,namespace,phase,pod, want cluster,container,endpoint,instance,job,namespace,pod"},
		{"no target labels", `image_cloner_cluster_connected{cluster="m"}`, "want cluster,container,endpoint,instance,job,namespace,pod"},
		{"a metric renamed", `image_cloner_cluster_up{cluster="m",` + target + `}`, "metric image_cloner_cluster_up is not exported"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			got := promrules.CheckSeries([]string{c.series}, inventory)
			if c.want == "" {
				g.Expect(got).To(BeEmpty())
				return
			}
			g.Expect(got).To(ConsistOf(ContainSubstring(c.want)))
		})
	}
}

func TestCollisions_findsExportedTargetLabels(t *testing.T) {
	g := NewWithT(t)
	g.Expect(promrules.Collisions(inventory)).To(BeEmpty())
	g.Expect(promrules.Collisions(promrules.Inventory{"image_cloner_x": {"namespace", "phase"}})).To(Equal([]string{"image_cloner_x has label namespace"}))
}
