package deploy_test

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/internal/enroll"
	"github.com/image-cloner/image-cloner/internal/testenv"
)

const hubServiceAccount = "system:serviceaccount:image-cloner-system:image-cloner-hub"

// warnings collects what the API server warns about (deprecated APIs, Pod Security).
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

// TestOverlays applies every overlay, as rendered, to a real kube-apiserver with server-side
// apply, in one cluster (the same field manager, so each overlay replaces what the previous one
// set on shared objects). Objects are really created: the envtest API server runs no
// controllers, so Deployments are only stored. The API server validates every object against
// its schema, rejects unknown fields, and warns about Pod Security (the namespace asks for
// restricted) and deprecated APIs: any warning fails the test. RBAC is then checked by asking
// the API server (SubjectAccessReview) what the hub's ServiceAccount may do.
//
// cert-manager is not installed: testdata/cert-manager-crds.yaml stands in for its CRDs with a
// schema covering only the fields deploy/cert-manager uses (names from cert-manager.io/v1), so
// a misspelt field fails, but values cert-manager itself would reject may pass. Prometheus
// Operator's PodMonitor and PrometheusRule get the same treatment
// (testdata/prometheus-operator-crds.yaml), for deploy/monitoring, applied last.
func TestOverlays(t *testing.T) {
	cluster := testenv.StartCluster(t, testenv.ClusterOptions{Name: "deploy"})
	var warn warnings
	cfg := rest.CopyConfig(cluster.Config)
	cfg.WarningHandlerWithContext = &warn
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	apply(ctx, t, c, decodeFile(t, filepath.Join("testdata", "cert-manager-crds.yaml")))
	apply(ctx, t, c, decodeFile(t, filepath.Join("testdata", "prometheus-operator-crds.yaml")))
	warn.take()

	for _, o := range overlays {
		t.Run(o, func(t *testing.T) {
			objs := render(t, filepath.Join("overlays", o))
			apply(ctx, t, c, objs)
			if o == "hub" || o == "single-cluster" {
				// The SubjectAccessReviews below must not run ahead of the RBAC cache.
				waitForBindings(ctx, t, c, serviceAccount("image-cloner-system", enroll.ServiceAccountName))
			}
			for _, w := range warn.take() {
				t.Errorf("the API server warned: %s", w)
			}
			if t.Failed() {
				return
			}
			switch o {
			case "hub":
				// Its own namespace only, read-only on Secrets; nothing in members' terms.
				expectAccess(ctx, t, c, map[authorizationv1.ResourceAttributes]bool{
					{Namespace: "image-cloner-system", Verb: "watch", Resource: "secrets"}:                               true,
					{Namespace: "image-cloner-system", Verb: "list", Resource: "configmaps"}:                             true,
					{Namespace: "image-cloner-system", Verb: "update", Group: "coordination.k8s.io", Resource: "leases"}: true,
					{Namespace: "image-cloner-system", Verb: "update", Resource: "secrets"}:                              false,
					{Namespace: "default", Verb: "get", Resource: "secrets"}:                                             false,
					{Verb: "list", Group: "apps", Resource: "deployments"}:                                               false,
					{Verb: "create", Group: "image-cloner.io", Resource: "clonedimages"}:                                 false,
				})
			case "single-cluster":
				// --local-cluster: a member's rights too, and still no write to any workload.
				expectAccess(ctx, t, c, map[authorizationv1.ResourceAttributes]bool{
					{Verb: "list", Group: "apps", Resource: "daemonsets"}:                                                          true,
					{Verb: "watch", Group: "batch", Resource: "cronjobs"}:                                                          true,
					{Verb: "update", Group: "image-cloner.io", Resource: "clonedimages", Subresource: "status"}:                    true,
					{Namespace: "image-cloner-system", Verb: "update", Resource: "secrets", Name: "image-cloner-pull-credentials"}: true,
					{Namespace: "image-cloner-system", Verb: "update", Resource: "secrets", Name: "image-cloner-push-credentials"}: false,
					{Namespace: "default", Verb: "patch", Group: "apps", Resource: "deployments"}:                                  false,
					{Namespace: "default", Verb: "update", Group: "apps", Resource: "daemonsets"}:                                  false,
					{Namespace: "default", Verb: "update", Group: "batch", Resource: "cronjobs"}:                                   false,
					{Namespace: "default", Verb: "create", Resource: "pods"}:                                                       false,
					{Namespace: "default", Verb: "get", Resource: "secrets"}:                                                       false,
				})
				expectRegisterRules(t, objs)
			}
		})
	}

	t.Run("monitoring", func(t *testing.T) {
		apply(ctx, t, c, render(t, "monitoring"))
		for _, w := range warn.take() {
			t.Errorf("the API server warned: %s", w)
		}
	})

	// The credential templates are not in any overlay; they must still be valid Secrets.
	t.Run("credentials.example.yaml", func(t *testing.T) {
		for _, u := range decodeFile(t, filepath.Join("hub", "credentials.example.yaml")) {
			if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("image-cloner-deploy-test"), client.ForceOwnership, client.DryRunAll); err != nil {
				t.Errorf("dry-run apply of Secret %s: %v", u.GetName(), err)
			}
		}
	})
}

// apply server-side applies objs, CRDs first and waiting for them to be established.
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
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u.DeepCopy()), client.FieldOwner("image-cloner-deploy-test"), client.ForceOwnership); err != nil {
			t.Fatalf("server-side apply of %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		if u.GetKind() == "CustomResourceDefinition" && (i+1 == len(objs) || order(objs[i+1]) > 0) {
			waitEstablished(ctx, t, c, objs[:i+1])
		}
	}
}

func waitEstablished(ctx context.Context, t *testing.T, c client.Client, crds []*unstructured.Unstructured) {
	t.Helper()
	for _, u := range crds {
		err := testenv.WaitFor(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := c.Get(ctx, client.ObjectKey{Name: u.GetName()}, &crd); err != nil {
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
			t.Fatalf("CRD %s not established: %v", u.GetName(), err)
		}
	}
}

// expectAccess asks the API server whether the hub's ServiceAccount may do each thing.
func expectAccess(ctx context.Context, t *testing.T, c client.Client, want map[authorizationv1.ResourceAttributes]bool) {
	t.Helper()
	for attrs, allowed := range want {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               hubServiceAccount,
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:image-cloner-system", "system:authenticated"},
			ResourceAttributes: &attrs,
		}}
		if err := c.Create(ctx, sar); err != nil {
			t.Fatal(err)
		}
		if sar.Status.Allowed != allowed {
			t.Errorf("the hub may %s %s.%s/%s %q in %q: %v, want %v", attrs.Verb, attrs.Resource, attrs.Group, attrs.Subresource, attrs.Name, attrs.Namespace, sar.Status.Allowed, allowed)
		}
	}
}

// expectRegisterRules checks that --local-cluster grants the hub exactly what `hub register`
// grants it in a member (internal/enroll), so both setups behave alike.
func expectRegisterRules(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, want := range enroll.Objects("image-cloner-system") {
		var got, exp []rbacv1.PolicyRule
		switch w := want.(type) {
		case *rbacv1.ClusterRole:
			exp = w.Rules
		case *rbacv1.Role:
			exp = w.Rules
		default:
			continue
		}
		u := find(objs, want.GetObjectKind().GroupVersionKind().Kind, want.GetName())
		if u == nil {
			kind := "ClusterRole"
			if _, ok := want.(*rbacv1.Role); ok {
				kind = "Role"
			}
			u = find(objs, kind, want.GetName())
		}
		if u == nil {
			t.Errorf("single-cluster has no %T %s, which `hub register` creates in a member", want, want.GetName())
			continue
		}
		got = as[rbacv1.ClusterRole](t, u).Rules
		if !equality.Semantic.DeepEqual(got, exp) {
			t.Errorf("%s %s: rules\n%v\ndiffer from internal/enroll's\n%v", u.GetKind(), u.GetName(), got, exp)
		}
	}
}
