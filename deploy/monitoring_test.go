package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/image-cloner/image-cloner/internal/promrules"
)

// monitored are deploy/monitoring's parts: each component's PodMonitor and PrometheusRule, the
// overlay whose Deployment they watch, and their promtool unit tests.
var monitored = []struct{ component, overlay string }{
	{"hub", "hub"},
	{"agent", "agent"},
}

// TestMonitoring_promtool runs promtool (hack/promtool.sh builds it from the Go module proxy)
// on each PrometheusRule's rules: `check rules`, then `test rules` with tests/<component>.test.yaml,
// which must test every alert both firing and staying silent.
func TestMonitoring_promtool(t *testing.T) {
	for _, m := range monitored {
		t.Run(m.component, func(t *testing.T) {
			rules := filepath.Join("monitoring", m.component, "prometheusrule.yaml")
			tests := filepath.Join("monitoring", "tests", m.component+".test.yaml")
			dir := t.TempDir()
			testFile, err := promrules.Prepare(dir, rules, tests)
			if err != nil {
				t.Fatal(err)
			}
			u, err := promrules.LoadUnitTests(tests)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := promrules.Run("check", "rules", filepath.Join(dir, u.RuleFiles[0])); err != nil {
				t.Fatalf("promtool check rules: %v\n%s", err, out)
			}
			if out, err := promrules.Run("test", "rules", testFile); err != nil {
				t.Fatalf("promtool test rules: %v\n%s", err, out)
			}
			pr, err := promrules.LoadPrometheusRule(rules)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range u.Untested(pr.Spec) {
				t.Error(p)
			}
		})
	}
}

// TestMonitoring_promtoolCatchesBrokenRules is TestMonitoring_promtool's positive control:
// rules broken the ways an edit breaks them make promtool fail, and an alert without tests is
// reported.
func TestMonitoring_promtoolCatchesBrokenRules(t *testing.T) {
	hubRules := filepath.Join("monitoring", "hub", "prometheusrule.yaml")
	cases := []struct {
		name, old, new string
		command        string // which promtool command must fail
	}{
		{name: "a metric renamed in one rule", old: "image_cloner_backup_registry_up)", new: "image_cloner_backup_registry_reachable)", command: "test"},
		{name: "a threshold changed", old: "for: 10m", new: "for: 30m", command: "test"},
		{name: "a description's wording", old: "mints a new token", new: "mints a token", command: "test"},
		{name: "not PromQL", old: "== 0\n          for: 10m", new: "== \n          for: 10m", command: "check"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data, err := os.ReadFile(hubRules)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), c.old) {
				t.Fatalf("%s no longer contains %q: update this case", hubRules, c.old)
			}
			broken := filepath.Join(t.TempDir(), "prometheusrule.yaml")
			if err := os.WriteFile(broken, []byte(strings.Replace(string(data), c.old, c.new, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			testFile, err := promrules.Prepare(dir, broken, filepath.Join("monitoring", "tests", "hub.test.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"test", "rules", testFile}
			if c.command == "check" {
				args = []string{"check", "rules", filepath.Join(dir, "hub.rules.yaml")}
			}
			if out, err := promrules.Run(args...); err == nil {
				t.Errorf("promtool %s rules passed rules with %s:\n%s", c.command, c.name, out)
			}
		})
	}
	t.Run("an alert without tests", func(t *testing.T) {
		pr, err := promrules.LoadPrometheusRule(hubRules)
		if err != nil {
			t.Fatal(err)
		}
		pr.Spec.Groups[0].Rules = append(pr.Spec.Groups[0].Rules, promrules.Rule{Alert: "ImageClonerNew", Expr: "image_cloner_copies_in_flight > 10"})
		u, err := promrules.LoadUnitTests(filepath.Join("monitoring", "tests", "hub.test.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if got := u.Untested(pr.Spec); !slices.Equal(got, []string{"ImageClonerNew: no test where it fires", "ImageClonerNew: no test where it stays silent"}) {
			t.Errorf("Untested: %q", got)
		}
	})
}

// TestMonitoring_render builds deploy/monitoring and each part: PodMonitors and
// PrometheusRules in image-cloner-system, each PodMonitor selecting the pods of its
// Deployment in the overlays and scraping a port those pods name.
func TestMonitoring_render(t *testing.T) {
	all := render(t, "monitoring")
	var names []string
	for _, o := range all {
		names = append(names, o.GetKind()+"/"+o.GetName())
	}
	slices.Sort(names)
	want := []string{"PodMonitor/image-cloner-agent", "PodMonitor/image-cloner-hub", "PrometheusRule/image-cloner-agent", "PrometheusRule/image-cloner-hub"}
	if !slices.Equal(names, want) {
		t.Errorf("deploy/monitoring renders %v, want %v", names, want)
	}
	for _, m := range monitored {
		t.Run(m.component, func(t *testing.T) {
			objs := render(t, filepath.Join("monitoring", m.component))
			name := "image-cloner-" + m.component
			pm, rule := find(objs, "PodMonitor", name), find(objs, "PrometheusRule", name)
			if pm == nil || rule == nil || len(objs) != 2 {
				t.Fatalf("deploy/monitoring/%s renders %d objects, want PodMonitor and PrometheusRule %s", m.component, len(objs), name)
			}
			for _, o := range objs {
				if o.GetAPIVersion() != "monitoring.coreos.com/v1" || o.GetNamespace() != "image-cloner-system" {
					t.Errorf("%s %s: %s in namespace %q, want monitoring.coreos.com/v1 in image-cloner-system", o.GetKind(), o.GetName(), o.GetAPIVersion(), o.GetNamespace())
				}
			}
			d := find(render(t, filepath.Join("overlays", m.overlay)), "Deployment", name)
			if d == nil {
				t.Fatalf("overlay %s has no Deployment %s", m.overlay, name)
			}
			for _, p := range podMonitorProblems(pm, as[appsv1.Deployment](t, d)) {
				t.Error(p)
			}
			pr, err := promrules.LoadPrometheusRule(filepath.Join("monitoring", m.component, "prometheusrule.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			// One group named after the component: hub/internal/app and agent/internal/app
			// check their own group against their own registry.
			if len(pr.Spec.Groups) != 1 || pr.Spec.Groups[0].Name != name {
				t.Errorf("PrometheusRule %s has groups %v, want one named %s", name, pr.Spec.Groups, name)
			}
		})
	}
}

// podMonitorProblems returns why pm would not scrape d's pods: its selector does not match their
// labels, or an endpoint names a port their containers do not have.
func podMonitorProblems(pm *unstructured.Unstructured, d *appsv1.Deployment) []string {
	var problems []string
	var spec struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		Endpoints []struct {
			Port string `json:"port"`
			Path string `json:"path"`
		} `json:"podMetricsEndpoints"`
	}
	raw, _, _ := unstructured.NestedMap(pm.Object, "spec")
	b, _ := yaml.Marshal(raw)
	if err := yaml.UnmarshalStrict(b, &spec); err != nil {
		return []string{fmt.Sprintf("PodMonitor %s: %v", pm.GetName(), err)}
	}
	if len(spec.Selector.MatchLabels) == 0 {
		problems = append(problems, fmt.Sprintf("PodMonitor %s selects every pod of its namespace", pm.GetName()))
	}
	for k, v := range spec.Selector.MatchLabels {
		if d.Spec.Template.Labels[k] != v {
			problems = append(problems, fmt.Sprintf("PodMonitor %s selects %s=%s, which the pods of Deployment %s do not have", pm.GetName(), k, v, d.Name))
		}
	}
	if len(spec.Endpoints) == 0 {
		problems = append(problems, fmt.Sprintf("PodMonitor %s has no podMetricsEndpoints", pm.GetName()))
	}
	for _, e := range spec.Endpoints {
		found := false
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, p := range c.Ports {
				found = found || p.Name == e.Port
			}
		}
		if !found || e.Path != "/metrics" {
			problems = append(problems, fmt.Sprintf("PodMonitor %s scrapes port %q path %q: Deployment %s's containers name no such port, or the path is not /metrics", pm.GetName(), e.Port, e.Path, d.Name))
		}
	}
	return problems
}

// TestPodMonitorProblems_catchesAMonitorThatScrapesNothing is podMonitorProblems' positive
// control.
func TestPodMonitorProblems_catchesAMonitorThatScrapesNothing(t *testing.T) {
	d := as[appsv1.Deployment](t, find(render(t, filepath.Join("overlays", "hub")), "Deployment", "image-cloner-hub"))
	pm := find(render(t, filepath.Join("monitoring", "hub")), "PodMonitor", "image-cloner-hub")
	if p := podMonitorProblems(pm, d); len(p) > 0 {
		t.Fatalf("the shipped PodMonitor already has problems: %v", p)
	}
	for name, mutate := range map[string]func(u *unstructured.Unstructured){
		"another app's label": func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(u.Object, "image-cloner-agent", "spec", "selector", "matchLabels", "app.kubernetes.io/name")
		},
		"a port name the pods do not have": func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedSlice(u.Object, []any{map[string]any{"port": "http-metrics", "path": "/metrics"}}, "spec", "podMetricsEndpoints")
		},
		"a misspelt field": func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedSlice(u.Object, []any{map[string]any{"port": "metrics", "path": "/metrics", "intreval": "30s"}}, "spec", "podMetricsEndpoints")
		},
	} {
		t.Run(name, func(t *testing.T) {
			u := pm.DeepCopy()
			mutate(u)
			if p := podMonitorProblems(u, d); len(p) == 0 {
				t.Errorf("podMonitorProblems missed %s", name)
			}
		})
	}
}
