package chart_test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/image-cloner/image-cloner/pkg/config"
)

// configProblems says what keeps data, a rendered ConfigMap image-cloner-configuration, from
// holding every key of pkg/config and nothing else, all parsed without error or warning.
func configProblems(data map[string]string, namespace string) []string {
	var problems []string
	keys := config.Keys()
	for _, k := range keys {
		if _, ok := data[k]; !ok {
			problems = append(problems, fmt.Sprintf("key %s is not rendered: give it a value in values.yaml `config` and templates/configmap.yaml", k))
		}
	}
	for k := range data {
		if !slices.Contains(keys, k) {
			problems = append(problems, fmt.Sprintf("key %s is not one of pkg/config's", k))
		}
	}
	c, err := config.Parse(data, namespace)
	if err != nil {
		problems = append(problems, err.Error())
	} else {
		problems = append(problems, c.Warnings...)
	}
	return problems
}

func configMapData(t testing.TB, objs []*unstructured.Unstructured) map[string]string {
	t.Helper()
	cm := find(t, objs, "ConfigMap", "image-cloner-configuration")
	if v, ok := cm.Object["data"]; !ok || v == nil {
		return map[string]string{}
	}
	data, _, err := unstructured.NestedStringMap(cm.Object, "data")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestChart_configMapHasEveryKey sets every `config` value (testdata/every-value.yaml) and checks
// that the ConfigMap then holds every key pkg/config knows, valid: a key added to pkg/config
// and not to the chart fails here. Lists given as YAML lists are joined with commas.
func TestChart_configMapHasEveryKey(t *testing.T) {
	objs, _ := renderChart(t, defaultNamespace, helmValues(t, []string{"testdata/every-value.yaml"}))
	data := configMapData(t, objs)
	for _, p := range configProblems(data, defaultNamespace) {
		t.Error(p)
	}
	for k, want := range map[string]string{
		config.KeyNamespacesToIgnore:      "kube-system,monitoring",
		config.KeyMaxConcurrentReconciles: "12",
		config.KeyPinDigest:               "false",
		config.KeyImagesToIgnore:          "*/pause:*,registry.example.com/base/*",
	} {
		if data[k] != want {
			t.Errorf("%s: %q, want %q", k, data[k], want)
		}
	}

	t.Run("positive controls", func(t *testing.T) {
		missing := maps(data)
		delete(missing, config.KeyRewriteMode)
		unknown := maps(data)
		unknown["NEW_KEY"] = "x"
		invalid := maps(data)
		invalid[config.KeyWebhookMode] = "block"
		for name, d := range map[string]map[string]string{"missing key": missing, "unknown key": unknown, "invalid value": invalid} {
			if p := configProblems(d, defaultNamespace); len(p) == 0 {
				t.Errorf("%s: configProblems found nothing", name)
			}
		}
	})

	t.Run("empty values leave their keys out", func(t *testing.T) {
		objs, _ := renderChart(t, defaultNamespace, helmValues(t, nil, "config.maxConcurrentReconciles=", "config.namespacesToIgnore="))
		if d := configMapData(t, objs); len(d) != 0 {
			t.Errorf("ConfigMap data %v, want none", d)
		}
	})
}

func maps(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// foreignNamespace says where a rendering for another release namespace still names deploy/'s.
func foreignNamespace(manifest string) []string {
	var problems []string
	for i, line := range strings.Split(manifest, "\n") {
		if strings.Contains(line, defaultNamespace) {
			problems = append(problems, fmt.Sprintf("line %d still says %s: %s", i+1, defaultNamespace, strings.TrimSpace(line)))
		}
	}
	return problems
}

// TestChart_otherNamespace: installed in namespace ops, nothing the chart renders names
// image-cloner-system (the webhooks' Service and namespaceSelector, RBAC subjects, the
// certificate's names), and the hub is told its namespace and push Secret.
func TestChart_otherNamespace(t *testing.T) {
	objs, rel := renderChart(t, "ops", helmValues(t, []string{"testdata/every-value.yaml"}))
	for _, p := range foreignNamespace(rel.Manifest) {
		t.Error(p)
	}
	if p := foreignNamespace("subjects: [{namespace: " + defaultNamespace + "}]"); len(p) == 0 {
		t.Error("foreignNamespace missed image-cloner-system")
	}
	hub := find(t, objs, "Deployment", "image-cloner-hub")
	cs, _, _ := unstructured.NestedSlice(hub.Object, "spec", "template", "spec", "containers")
	args, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
	for _, want := range []string{"--namespace=ops", "--push-secret=acme-pusher", "--local-cluster", "--kube-qps=50"} {
		if !slices.Contains(args, want) {
			t.Errorf("the hub's args %v lack %s", args, want)
		}
	}
	w := find(t, objs, "ValidatingWebhookConfiguration", "image-cloner-validating")
	hooks, _, _ := unstructured.NestedSlice(w.Object, "webhooks")
	for _, h := range hooks {
		ns, _, _ := unstructured.NestedString(h.(map[string]any), "clientConfig", "service", "namespace")
		if ns != "ops" {
			t.Errorf("webhook %v calls a Service in %q, want ops", h.(map[string]any)["name"], ns)
		}
	}
	if a := w.GetAnnotations()["cert-manager.io/inject-ca-from"]; a != "ops/image-cloner-agent-webhook" {
		t.Errorf("cert-manager.io/inject-ca-from: %q", a)
	}
}

// leaves returns the dotted paths of every value in v that is not a map (lists are leaves).
func leaves(prefix string, v map[string]any) []string {
	var out []string
	for k, x := range v {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		if m, ok := x.(map[string]any); ok && len(m) > 0 {
			out = append(out, leaves(p, m)...)
			continue
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// keptDefaults are the values testdata/every-value.yaml leaves at their defaults, and why.
var keptDefaults = map[string]string{
	"hub.enabled":                              "every component on",
	"hub.localCluster":                         "every component on",
	"agent.enabled":                            "every component on",
	"webhooks.enabled":                         "every component on",
	"crds.enabled":                             "every component on",
	"hub.podDisruptionBudget.minAvailable":     "maxUnavailable is set instead",
	"agent.podDisruptionBudget.enabled":        "on by default",
	"agent.podDisruptionBudget.maxUnavailable": "minAvailable is set instead",
	"agent.image.digest":                       "the hub's image is given by digest, the agent's by tag",
}

// unsetValues returns the values of values.yaml that every-value.yaml does not set.
func unsetValues(defaults, every map[string]any) []string {
	everyLeaves := leaves("", every)
	// An empty map by default (nodeSelector: {}) is set by any value under it.
	isSet := func(p string) bool {
		return slices.ContainsFunc(everyLeaves, func(e string) bool { return e == p || strings.HasPrefix(e, p+".") })
	}
	var missing []string
	for _, p := range leaves("", defaults) {
		if !isSet(p) && keptDefaults[p] == "" {
			missing = append(missing, p)
		}
	}
	return missing
}

// TestEveryValue_setsEveryValue keeps testdata/every-value.yaml complete, so that lint, the
// ConfigMap check and the apply test see every value of the chart set: a value added to
// values.yaml and not there fails here.
func TestEveryValue_setsEveryValue(t *testing.T) {
	defaults := loadChart(t, ".").Values
	every := helmValues(t, []string{"testdata/every-value.yaml"})
	for _, p := range unsetValues(defaults, every) {
		t.Errorf("testdata/every-value.yaml does not set %s: set it there (or say in keptDefaults why not)", p)
	}
	t.Run("a value added to values.yaml alone fails", func(t *testing.T) {
		d := helmValues(t, []string{"values.yaml"}, "hub.newValue=x")
		if p := unsetValues(d, every); !slices.Equal(p, []string{"hub.newValue"}) {
			t.Errorf("unsetValues: %v, want [hub.newValue]", p)
		}
	})
}
