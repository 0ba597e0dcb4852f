package chart_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/internal/testenv"
)

// warnings collects what the API server warns about (Pod Security, deprecated APIs).
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.list
	w.list = nil
	return l
}

// TestChart_apply server-side applies what the chart renders to a real kube-apiserver (envtest,
// as deploy/apply_test.go does): for every value set, in namespace ops, then for each overlay's
// values in image-cloner-system, always with namespace.create so the namespace enforces Pod
// Security restricted. The API server validates every object against its schema and rejects
// unknown fields; any warning it returns fails the test. RBAC is checked by asking the API
// server (SubjectAccessReview) what the hub's ServiceAccount of that namespace may do. The
// cert-manager and Prometheus Operator kinds are deploy/testdata's stand-in CRDs (every value
// turns the PodMonitors and PrometheusRules on).
func TestChart_apply(t *testing.T) {
	cluster := testenv.StartCluster(t, testenv.ClusterOptions{Name: "chart"})
	var warn warnings
	cfg := rest.CopyConfig(cluster.Config)
	cfg.WarningHandlerWithContext = &warn
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for _, f := range []string{"cert-manager-crds.yaml", "prometheus-operator-crds.yaml"} {
		standIns, err := decodeFile(filepath.Join(deployDir, "testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		apply(ctx, t, c, standIns)
	}
	warn.take()

	cases := []struct {
		name, namespace string
		files           []string
		// access maps what the namespace's hub ServiceAccount may do to whether it may.
		access map[authorizationv1.ResourceAttributes]bool
	}{
		{name: "every value", namespace: "ops", files: []string{"testdata/every-value.yaml"},
			access: map[authorizationv1.ResourceAttributes]bool{
				{Namespace: "ops", Verb: "watch", Resource: "secrets"}:                                         true,
				{Namespace: "ops", Verb: "update", Resource: "secrets", Name: "image-cloner-pull-credentials"}: true,
				{Namespace: defaultNamespace, Verb: "get", Resource: "secrets"}:                                false,
				{Verb: "list", Group: "apps", Resource: "daemonsets"}:                                          true,
				{Namespace: "default", Verb: "patch", Group: "apps", Resource: "deployments"}:                  false,
			}},
		{name: "hub", namespace: defaultNamespace, files: []string{"examples/hub.yaml"},
			access: map[authorizationv1.ResourceAttributes]bool{
				{Namespace: defaultNamespace, Verb: "watch", Resource: "secrets"}:  true,
				{Namespace: defaultNamespace, Verb: "update", Resource: "secrets"}: false,
				{Namespace: "ops", Verb: "get", Resource: "secrets"}:               false,
			}},
		{name: "agent", namespace: defaultNamespace, files: []string{"examples/agent.yaml"}},
		{name: "cert-manager", namespace: defaultNamespace, files: []string{"examples/cert-manager.yaml"}},
		{name: "single-cluster", namespace: defaultNamespace,
			access: map[authorizationv1.ResourceAttributes]bool{
				{Verb: "watch", Group: "batch", Resource: "cronjobs"}:                                                     true,
				{Namespace: defaultNamespace, Verb: "update", Resource: "secrets", Name: "image-cloner-push-credentials"}: false,
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			objs, _ := renderChart(t, tc.namespace, helmValues(t, tc.files, "namespace.create=true"))
			apply(ctx, t, c, objs)
			for _, w := range warn.take() {
				t.Errorf("the API server warned: %s", w)
			}
			for attrs, allowed := range tc.access {
				sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
					User:               "system:serviceaccount:" + tc.namespace + ":image-cloner-hub",
					Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + tc.namespace, "system:authenticated"},
					ResourceAttributes: &attrs,
				}}
				if err := c.Create(ctx, sar); err != nil {
					t.Fatal(err)
				}
				if sar.Status.Allowed != allowed {
					t.Errorf("the hub of %s may %s %s.%s %q in %q: %v, want %v", tc.namespace, attrs.Verb, attrs.Resource, attrs.Group, attrs.Name, attrs.Namespace, sar.Status.Allowed, allowed)
				}
			}
		})
	}

	// The positive control: a value the schema of an object rejects must fail the apply, and a
	// pod the restricted profile forbids must warn.
	t.Run("the API server refuses a broken rendering", func(t *testing.T) {
		objs, _ := renderChart(t, defaultNamespace, helmValues(t, []string{"examples/agent.yaml"}, "agent.podDisruptionBudget.minAvailable=most"))
		pdb := find(t, objs, "PodDisruptionBudget", "image-cloner-agent")
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(pdb), client.FieldOwner("image-cloner-chart-test"), client.ForceOwnership, client.DryRunAll); err == nil {
			t.Error("the API server accepted minAvailable: most")
		}
		d := find(t, objs, "Deployment", "image-cloner-agent")
		cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
		_ = unstructured.SetNestedField(cs[0].(map[string]any), true, "securityContext", "allowPrivilegeEscalation")
		_ = unstructured.SetNestedSlice(d.Object, cs, "spec", "template", "spec", "containers")
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(d), client.FieldOwner("image-cloner-chart-test"), client.ForceOwnership, client.DryRunAll); err != nil {
			t.Fatal(err)
		}
		if w := warn.take(); !slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, "allowPrivilegeEscalation") }) {
			t.Errorf("no Pod Security warning for allowPrivilegeEscalation: %v", w)
		}
	})
}

func decodeFile(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return decode(f)
}

// apply server-side applies objs, CRDs and Namespaces first, waiting for CRDs to be established.
func apply(ctx context.Context, t *testing.T, c client.Client, objs []*unstructured.Unstructured) {
	t.Helper()
	order := func(u *unstructured.Unstructured) int {
		switch u.GetKind() {
		case "CustomResourceDefinition":
			return 0
		case "Namespace":
			return 1
		}
		return 2
	}
	objs = slices.Clone(objs)
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int { return order(a) - order(b) })
	for i, u := range objs {
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()), client.FieldOwner("image-cloner-chart-test"), client.ForceOwnership); err != nil {
			t.Fatalf("server-side apply of %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		if u.GetKind() == "CustomResourceDefinition" && (i+1 == len(objs) || order(objs[i+1]) > 0) {
			for _, crd := range objs[:i+1] {
				waitEstablished(ctx, t, c, crd.GetName())
			}
		}
	}
}

func waitEstablished(ctx context.Context, t *testing.T, c client.Client, name string) {
	t.Helper()
	err := testenv.WaitFor(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			return false, err
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD %s not established: %v", name, err)
	}
}
