// Package chart_test checks the Helm chart with helm's own Go library (helm.sh/helm/v4): it
// lints it, renders it as `helm template` does, compares what it renders with the kustomize
// overlays of deploy/ (the two must not drift), and applies it to a real kube-apiserver.
package chart_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v4/pkg/action"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/cli/values"
	"helm.sh/helm/v4/pkg/getter"
	release "helm.sh/helm/v4/pkg/release/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const (
	// defaultNamespace is where deploy/ installs, and the release namespace of the comparisons.
	defaultNamespace = "image-cloner-system"
	releaseName      = "image-cloner"
	deployDir        = "../../deploy"
)

// overlays maps each overlay of deploy/ to the values file of examples/ that must render the
// same objects ("" is the chart's defaults alone), and to the part of deploy/monitoring that
// podMonitor.enabled and prometheusRule.enabled add to it.
var overlays = []struct{ overlay, values, monitoring string }{
	{"single-cluster", "", "monitoring"},
	{"single-cluster", "examples/single-cluster.yaml", "monitoring"},
	{"hub", "examples/hub.yaml", "monitoring/hub"},
	{"agent", "examples/agent.yaml", "monitoring/agent"},
	{"cert-manager", "examples/cert-manager.yaml", "monitoring/agent"},
}

// helmLabels are the labels the chart adds to every object's metadata (templates/_helpers.tpl),
// and helmAnnotations what it adds for Helm's sake: the only differences from deploy/ allowed.
var (
	helmLabels      = []string{"helm.sh/chart", "app.kubernetes.io/instance"}
	helmAnnotations = []string{"helm.sh/resource-policy"}
)

func init() {
	// Helm logs through slog's default logger (e.g. lint's progress): keep test output readable.
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// helmValues merges values files and --set style assignments the way the helm CLI does.
func helmValues(t testing.TB, files []string, set ...string) map[string]any {
	t.Helper()
	opts := values.Options{ValueFiles: files, Values: set}
	v, err := opts.MergeValues(getter.Providers{})
	if err != nil {
		t.Fatalf("values %v %v: %v", files, set, err)
	}
	return v
}

func loadChart(t testing.TB, dir string) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(dir)
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	return ch
}

// template renders the chart as `helm template image-cloner charts/image-cloner -n ns` does:
// an install with client-side dry run, so no API server is involved. It returns the release
// (manifest and NOTES) or the rendering error.
func template(ch *chart.Chart, namespace string, vals map[string]any) (*release.Release, error) {
	install := action.NewInstall(action.NewConfiguration())
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = releaseName
	install.Namespace = namespace
	install.Replace = true // as `helm template`: no release name check
	install.IncludeCRDs = true
	r, err := install.RunWithContext(context.Background(), ch, vals)
	if err != nil {
		return nil, err
	}
	rel, ok := r.(*release.Release)
	if !ok {
		return nil, fmt.Errorf("install returned a %T", r)
	}
	return rel, nil
}

// renderChart templates the chart and decodes every object it renders.
func renderChart(t testing.TB, namespace string, vals map[string]any) ([]*unstructured.Unstructured, *release.Release) {
	t.Helper()
	rel, err := template(loadChart(t, "."), namespace, vals)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	objs, err := decode(strings.NewReader(rel.Manifest))
	if err != nil {
		t.Fatalf("decoding the rendered chart: %v\n%s", err, rel.Manifest)
	}
	return objs, rel
}

// renderOverlay builds a kustomization as `kubectl apply -k` does (deploy/render_test.go's way).
func renderOverlay(t testing.TB, overlay string) []*unstructured.Unstructured {
	t.Helper()
	return renderKustomization(t, filepath.Join(deployDir, "overlays", overlay))
}

// renderKustomization builds the kustomization in dir.
func renderKustomization(t testing.TB, dir string) []*unstructured.Unstructured {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range m.Resources() {
		// Through JSON, so numbers are int64 as in any object the API machinery decodes.
		b, err := r.MarshalJSON()
		u := &unstructured.Unstructured{}
		if err == nil {
			err = u.UnmarshalJSON(b)
		}
		if err != nil {
			t.Fatalf("kustomize build %s: %s: %v", dir, r.CurId(), err)
		}
		out = append(out, u)
	}
	return out
}

// decode reads every YAML document, through JSON as renderOverlay does.
func decode(r io.Reader) ([]*unstructured.Unstructured, error) {
	d := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := d.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(u.Object) > 0 {
			b, err := u.MarshalJSON()
			if err == nil {
				err = u.UnmarshalJSON(b)
			}
			if err != nil {
				return nil, err
			}
			out = append(out, u)
		}
	}
}

func key(u *unstructured.Unstructured) string {
	return fmt.Sprintf("%s %s %s/%s", u.GetAPIVersion(), u.GetKind(), u.GetNamespace(), u.GetName())
}

// withoutHelm returns a copy of objs without what the chart adds for Helm: helmLabels in each
// object's metadata and helmAnnotations (pod templates, selectors and every other field are
// left as they are, so they must equal deploy/'s).
func withoutHelm(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		o = o.DeepCopy()
		if l := o.GetLabels(); l != nil {
			for _, k := range helmLabels {
				delete(l, k)
			}
			o.SetLabels(l)
			if len(l) == 0 {
				unstructured.RemoveNestedField(o.Object, "metadata", "labels")
			}
		}
		if a := o.GetAnnotations(); a != nil {
			for _, k := range helmAnnotations {
				delete(a, k)
			}
			o.SetAnnotations(a)
			if len(a) == 0 {
				unstructured.RemoveNestedField(o.Object, "metadata", "annotations")
			}
		}
		out = append(out, o)
	}
	return out
}

// drift returns every difference between what the chart rendered and what kustomize did, once
// the chart's Helm additions are removed: objects only one of them has, and field differences.
func drift(chartObjs, kustomizeObjs []*unstructured.Unstructured) []string {
	index := func(objs []*unstructured.Unstructured) (map[string]*unstructured.Unstructured, []string) {
		m := map[string]*unstructured.Unstructured{}
		var dups []string
		for _, o := range objs {
			if _, ok := m[key(o)]; ok {
				dups = append(dups, "rendered twice: "+key(o))
			}
			m[key(o)] = o
		}
		return m, dups
	}
	c, problems := index(withoutHelm(chartObjs))
	k, dups := index(kustomizeObjs)
	problems = append(problems, dups...)
	var keys []string
	for n := range c {
		keys = append(keys, n)
	}
	for n := range k {
		if _, ok := c[n]; !ok {
			keys = append(keys, n)
		}
	}
	sort.Strings(keys)
	for _, n := range keys {
		switch co, ko := c[n], k[n]; {
		case ko == nil:
			problems = append(problems, "only the chart renders "+n)
		case co == nil:
			problems = append(problems, "only kustomize renders "+n)
		default:
			if d := cmp.Diff(ko.Object, co.Object); d != "" {
				problems = append(problems, fmt.Sprintf("%s differs (-kustomize +chart):\n%s", n, d))
			}
		}
	}
	return problems
}

// TestChart_matchesOverlays is the no-drift check: for each overlay of deploy/, the chart with
// the matching examples/ values renders exactly the overlay's objects, apart from helmLabels and
// helmAnnotations. Without namespace.create the chart leaves the Namespace to Helm
// (--create-namespace), so the overlay's Namespace is left out of that comparison; with it, the
// Namespace must match too.
func TestChart_matchesOverlays(t *testing.T) {
	for _, c := range overlays {
		name := c.overlay + "/" + strings.TrimSuffix(filepath.Base(c.values), ".yaml")
		if c.values == "" {
			name = c.overlay + "/defaults"
		}
		var files []string
		if c.values != "" {
			files = []string{c.values}
		}
		t.Run(name, func(t *testing.T) {
			want := renderOverlay(t, c.overlay)
			withoutNamespace := slices.DeleteFunc(slices.Clone(want), func(u *unstructured.Unstructured) bool { return u.GetKind() == "Namespace" })
			if len(withoutNamespace) != len(want)-1 {
				t.Fatalf("overlay %s has %d Namespaces, want 1", c.overlay, len(want)-len(withoutNamespace))
			}
			got, _ := renderChart(t, defaultNamespace, helmValues(t, files))
			for _, p := range drift(got, withoutNamespace) {
				t.Error(p)
			}
			got, _ = renderChart(t, defaultNamespace, helmValues(t, files, "namespace.create=true"))
			for _, p := range drift(got, want) {
				t.Errorf("with namespace.create: %s", p)
			}
		})
	}
}

// TestChart_monitoringMatchesDeploy extends the no-drift check to deploy/monitoring: with
// podMonitor.enabled and prometheusRule.enabled, each example renders its overlay's objects
// plus exactly the PodMonitors and PrometheusRules of the matching part of deploy/monitoring;
// with only one of them on, only its kind is added.
func TestChart_monitoringMatchesDeploy(t *testing.T) {
	for _, c := range overlays {
		name := c.overlay + "/" + strings.TrimSuffix(filepath.Base(c.values), ".yaml")
		if c.values == "" {
			name = c.overlay + "/defaults"
		}
		var files []string
		if c.values != "" {
			files = []string{c.values}
		}
		t.Run(name, func(t *testing.T) {
			base := slices.DeleteFunc(renderOverlay(t, c.overlay), func(u *unstructured.Unstructured) bool { return u.GetKind() == "Namespace" })
			monitoring := renderKustomization(t, filepath.Join(deployDir, c.monitoring))
			for _, kind := range []string{"PodMonitor", "PrometheusRule"} {
				if !slices.ContainsFunc(monitoring, func(u *unstructured.Unstructured) bool { return u.GetKind() == kind }) {
					t.Fatalf("deploy/%s has no %s", c.monitoring, kind)
				}
			}
			only := func(kind string) []*unstructured.Unstructured {
				return slices.DeleteFunc(slices.Clone(monitoring), func(u *unstructured.Unstructured) bool { return u.GetKind() != kind })
			}
			for _, v := range []struct {
				set  []string
				want []*unstructured.Unstructured
			}{
				{[]string{"podMonitor.enabled=true", "prometheusRule.enabled=true"}, monitoring},
				{[]string{"podMonitor.enabled=true"}, only("PodMonitor")},
				{[]string{"prometheusRule.enabled=true"}, only("PrometheusRule")},
			} {
				got, _ := renderChart(t, defaultNamespace, helmValues(t, files, v.set...))
				for _, p := range drift(got, append(slices.Clone(base), v.want...)) {
					t.Errorf("%v: %s", v.set, p)
				}
			}
		})
	}
	t.Run("a rule changed in deploy/ alone is drift", func(t *testing.T) {
		got, _ := renderChart(t, defaultNamespace, helmValues(t, []string{"examples/hub.yaml"}, "prometheusRule.enabled=true"))
		want := append(renderOverlay(t, "hub"), renderKustomization(t, filepath.Join(deployDir, "monitoring", "hub"))...)
		want = slices.DeleteFunc(want, func(u *unstructured.Unstructured) bool {
			return u.GetKind() == "Namespace" || u.GetKind() == "PodMonitor"
		})
		rule := find(t, want, "PrometheusRule", "image-cloner-hub")
		groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
		rules := groups[0].(map[string]any)["rules"].([]any)
		rules[0].(map[string]any)["for"] = "20m"
		_ = unstructured.SetNestedSlice(rule.Object, groups, "spec", "groups")
		if p := drift(got, want); len(p) != 1 || !strings.Contains(p[0], "PrometheusRule image-cloner-system/image-cloner-hub differs") {
			t.Errorf("drift reported %v, want the PrometheusRule", p)
		}
	})
}

// TestDrift_catchesDifferences is the positive control of TestChart_matchesOverlays: each
// mutation of the chart's rendering (or kustomize's) must be reported by drift.
func TestDrift_catchesDifferences(t *testing.T) {
	nested := func(u *unstructured.Unstructured, v any, fields ...string) {
		if err := unstructured.SetNestedField(u.Object, v, fields...); err != nil {
			t.Fatal(err)
		}
	}
	firstContainer := func(u *unstructured.Unstructured, f func(map[string]any)) {
		cs, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
		f(cs[0].(map[string]any))
		if err := unstructured.SetNestedSlice(u.Object, cs, "spec", "template", "spec", "containers"); err != nil {
			t.Fatal(err)
		}
	}
	mutations := map[string]func(chartObjs []*unstructured.Unstructured) []*unstructured.Unstructured{
		"agent replicas": func(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
			nested(find(t, objs, "Deployment", "image-cloner-agent"), int64(3), "spec", "replicas")
			return objs
		},
		"an extra argument": func(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
			firstContainer(find(t, objs, "Deployment", "image-cloner-agent"), func(c map[string]any) {
				c["args"] = append(c["args"].([]any), "--kube-qps=5")
			})
			return objs
		},
		"webhook timeout": func(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
			w := find(t, objs, "MutatingWebhookConfiguration", "image-cloner-mutating")
			hs, _, _ := unstructured.NestedSlice(w.Object, "webhooks")
			hs[2].(map[string]any)["timeoutSeconds"] = int64(10)
			_ = unstructured.SetNestedSlice(w.Object, hs, "webhooks")
			return objs
		},
		"a label Helm does not need": func(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
			s := find(t, objs, "Service", "image-cloner-agent-webhook")
			l := s.GetLabels()
			l["app.kubernetes.io/managed-by"] = "Helm"
			s.SetLabels(l)
			return objs
		},
		"a pod template label": func(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
			nested(find(t, objs, "Deployment", "image-cloner-agent"), releaseName, "spec", "template", "metadata", "labels", "app.kubernetes.io/instance")
			return objs
		},
		"a missing RoleBinding": func(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
			rb := find(t, objs, "RoleBinding", "image-cloner-agent")
			return slices.DeleteFunc(objs, func(u *unstructured.Unstructured) bool { return u == rb })
		},
		"an object in another namespace": func(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
			find(t, objs, "ServiceAccount", "image-cloner-agent").SetNamespace("default")
			return objs
		},
		"a CRD field": func(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
			nested(find(t, objs, "CustomResourceDefinition", "clonedimages.image-cloner.io"), "Namespaced", "spec", "scope")
			return objs
		},
	}
	want := slices.DeleteFunc(renderOverlay(t, "agent"), func(u *unstructured.Unstructured) bool { return u.GetKind() == "Namespace" })
	for name, mutate := range mutations {
		t.Run(name, func(t *testing.T) {
			got, _ := renderChart(t, defaultNamespace, helmValues(t, []string{"examples/agent.yaml"}))
			if p := drift(got, want); len(p) > 0 {
				t.Fatalf("the chart already drifts: %v", p)
			}
			if p := drift(mutate(got), want); len(p) == 0 {
				t.Errorf("drift missed the mutation %q", name)
			}
		})
	}
	t.Run("an object only kustomize has", func(t *testing.T) {
		got, _ := renderChart(t, defaultNamespace, helmValues(t, []string{"examples/agent.yaml"}))
		if p := drift(got, renderOverlay(t, "agent")); len(p) != 1 || !strings.Contains(p[0], "only kustomize renders v1 Namespace /image-cloner-system") {
			t.Errorf("drift reported %v, want only the Namespace", p)
		}
	})
}

func find(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s", kind, name)
	return nil
}

// copies are the files of deploy/ the chart reads from files/ (`make chart` copies them).
var copies = map[string]string{
	"files/webhooks.yaml":                     deployDir + "/webhooks/webhooks.yaml",
	"files/image-cloner.io_clonedimages.yaml": deployDir + "/crds/image-cloner.io_clonedimages.yaml",
	"files/prometheusrule-hub.yaml":           deployDir + "/monitoring/hub/prometheusrule.yaml",
	"files/prometheusrule-agent.yaml":         deployDir + "/monitoring/agent/prometheusrule.yaml",
}

func sameFile(copy, original string) error {
	a, err := os.ReadFile(copy)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(original)
	if err != nil {
		return err
	}
	if !bytes.Equal(a, b) {
		return fmt.Errorf("%s differs from %s: run `make chart` and commit", copy, original)
	}
	return nil
}

// TestChart_filesAreDeploysCopies: the webhooks and the CRD are deploy/'s own files, byte for
// byte, so a change there reaches the chart through `make chart` (and this test says so).
func TestChart_filesAreDeploysCopies(t *testing.T) {
	for c, o := range copies {
		if err := sameFile(c, o); err != nil {
			t.Error(err)
		}
	}
	t.Run("a stale copy fails", func(t *testing.T) {
		stale := filepath.Join(t.TempDir(), "webhooks.yaml")
		b, err := os.ReadFile("files/webhooks.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(stale, bytes.Replace(b, []byte("timeoutSeconds: 5"), []byte("timeoutSeconds: 4"), 1), 0o600); err != nil {
			t.Fatal(err)
		}
		if sameFile(stale, copies["files/webhooks.yaml"]) == nil {
			t.Error("sameFile missed a changed timeout")
		}
	})
}

// lint runs `helm lint --strict` on the chart in dir with vals and returns its errors and
// warnings.
func lint(dir string, vals map[string]any) []string {
	l := action.NewLint()
	l.Strict = true
	l.Namespace = defaultNamespace
	r := l.Run([]string{dir}, vals)
	var out []string
	for _, e := range r.Errors {
		out = append(out, e.Error())
	}
	if r.TotalChartsLinted != 1 {
		out = append(out, fmt.Sprintf("linted %d charts, want 1", r.TotalChartsLinted))
	}
	return out
}

// TestChart_lint: `helm lint --strict` (warnings fail too) with the defaults, every example
// and every value set; and, as positive control, a chart with a broken template.
func TestChart_lint(t *testing.T) {
	cases := map[string]map[string]any{
		"defaults":      helmValues(t, nil),
		"every value":   helmValues(t, []string{"testdata/every-value.yaml"}),
		"namespace ops": helmValues(t, nil, "namespace.create=true"),
	}
	for _, c := range overlays {
		if c.values != "" {
			cases[c.values] = helmValues(t, []string{c.values})
		}
	}
	for name, vals := range cases {
		t.Run(name, func(t *testing.T) {
			for _, e := range lint(".", vals) {
				t.Error(e)
			}
		})
	}
	// helm lint does not run `fail` (its lint mode makes it a no-op), so values the chart
	// refuses are checked with helm template.
	t.Run("helm template refuses configMapForAgent without a registry", func(t *testing.T) {
		_, err := template(loadChart(t, "."), defaultNamespace, helmValues(t, []string{"examples/agent.yaml"}, "configMapForAgent=true"))
		if err == nil || !strings.Contains(err.Error(), "set config.backupRegistry too") {
			t.Errorf("helm template: %v, want the chart's refusal", err)
		}
	})
	t.Run("a broken template fails", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "image-cloner")
		if err := os.CopyFS(dir, os.DirFS(".")); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "templates", "hub.yaml")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Replace(b, []byte("{{ $h.replicas }}"), []byte("{{ $h.replicas }"), 1), 0o600); err != nil {
			t.Fatal(err)
		}
		if e := lint(dir, helmValues(t, nil)); len(e) == 0 {
			t.Error("lint accepted a template with an unclosed action")
		}
	})
}

// TestChart_notes: NOTES.txt says what to set before the hub is Ready, and how to register a
// member, for the setup it is shown in.
func TestChart_notes(t *testing.T) {
	cases := []struct {
		name    string
		files   []string
		set     []string
		want    []string
		notWant []string
	}{
		{name: "hub of a fleet", files: []string{"examples/hub.yaml"},
			want: []string{"BACKUP_REGISTRY", "It is NOT set", "--set config.backupRegistry=", "create secret docker-registry image-cloner-push-credentials", "hub register --kubeconfig"}},
		{name: "hub with its registry and another push Secret", files: []string{"examples/hub.yaml"}, set: []string{"config.backupRegistry=quay.io/acme", "credentials.pushSecretName=pusher"},
			want: []string{"set to quay.io/acme", "create secret docker-registry pusher"}, notWant: []string{"It is NOT set"}},
		{name: "single cluster", want: []string{"BACKUP_REGISTRY", "image-cloner-push-credentials", "agent restore"}, notWant: []string{"hub register"}},
		{name: "member", files: []string{"examples/agent.yaml"}, want: []string{"This is a member", "hub register"}, notWant: []string{"BACKUP_REGISTRY"}},
		{name: "other namespace", files: []string{"examples/hub.yaml"}, set: []string{"namespace.create=true"}, want: []string{"--namespace ops"}, notWant: []string{"kubectl label namespace"}},
		{name: "monitoring without selector labels", set: []string{"podMonitor.enabled=true", "prometheusRule.enabled=true"},
			want: []string{"Prometheus Operator's CRDs", "PodMonitors image-cloner-hub, image-cloner-agent", "PrometheusRules image-cloner-hub, image-cloner-agent", "podMonitor.labels is empty", "prometheusRule.labels is empty"}},
		{name: "monitoring of a member with labels", files: []string{"examples/agent.yaml"}, set: []string{"podMonitor.enabled=true", "podMonitor.labels.release=kps", "prometheusRule.enabled=true", "prometheusRule.labels.release=kps"},
			want: []string{"PodMonitor image-cloner-agent scrape", "PrometheusRule image-cloner-agent hold"}, notWant: []string{"is empty", "image-cloner-hub,"}},
		{name: "no monitoring", notWant: []string{"Monitoring", "PodMonitor"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ns := defaultNamespace
			if c.name == "other namespace" {
				ns = "ops"
			}
			_, rel := renderChart(t, ns, helmValues(t, c.files, c.set...))
			for _, w := range c.want {
				if !strings.Contains(rel.Info.Notes, w) {
					t.Errorf("NOTES.txt does not say %q:\n%s", w, rel.Info.Notes)
				}
			}
			for _, w := range c.notWant {
				if strings.Contains(rel.Info.Notes, w) {
					t.Errorf("NOTES.txt says %q:\n%s", w, rel.Info.Notes)
				}
			}
		})
	}
}

// waitTimeout bounds each API call sequence of the apply test.
const waitTimeout = 3 * time.Minute
