package deploy_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// overlays are every kustomization a user is told to apply, in the order TestOverlays applies
// them to one API server: the hub alone first, so that what it may do is checked before any
// other overlay adds RBAC, and single-cluster last.
var overlays = []string{"hub", "agent", "cert-manager", "single-cluster"}

// render builds the kustomization in dir the way `kubectl apply -k` does (kustomize's default
// options: load restrictions on, no plugins).
func render(t testing.TB, dir string) []*unstructured.Unstructured {
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
	if len(out) == 0 {
		t.Fatalf("kustomize build %s rendered nothing", dir)
	}
	return out
}

// decodeFile reads every YAML document of a file, without a schema.
func decodeFile(t testing.TB, path string) []*unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := d.Decode(&u.Object); err != nil {
			if err.Error() == "EOF" {
				return out
			}
			t.Fatalf("%s: %v", path, err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// as converts a rendered object to its typed form, failing on fields the type does not have.
func as[T any](t testing.TB, u *unstructured.Unstructured) *T {
	t.Helper()
	var v T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &v, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return &v
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// TestOverlays_render checks what can be checked without an API server, for every overlay.
func TestOverlays_render(t *testing.T) {
	for _, o := range overlays {
		t.Run(o, func(t *testing.T) {
			objs := render(t, filepath.Join("overlays", o))
			for _, p := range checkObjects(t, objs) {
				t.Error(p)
			}
			for _, u := range objs {
				if u.GetKind() == "Secret" {
					t.Errorf("overlay %s ships Secret %s: credentials are the user's, never part of a kustomization (applying it would overwrite theirs)", o, u.GetName())
				}
			}
		})
	}
}

// checkObjects returns every rule a rendered overlay breaks: containers non-root, read-only,
// without privilege escalation, with requests and probes; webhooks that cannot lock a cluster
// and point at a Service the overlay ships; no wildcard RBAC; the hub never writes workloads.
func checkObjects(t testing.TB, objs []*unstructured.Unstructured) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for _, u := range objs {
		switch u.GetKind() {
		case "Deployment":
			d := as[appsv1.Deployment](t, u)
			problems = append(problems, checkPod(d.Name, &d.Spec.Template.Spec)...)
			if sa := d.Spec.Template.Spec.ServiceAccountName; sa == "" || find(objs, "ServiceAccount", sa) == nil {
				bad("Deployment %s: ServiceAccount %q is not in the overlay", d.Name, sa)
			}
		case "DaemonSet", "StatefulSet", "Job", "CronJob", "Pod":
			bad("%s %s: only Deployments are expected; extend checkObjects for it", u.GetKind(), u.GetName())
		case "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration":
			type hook struct {
				Name               string
				FailurePolicy      *string
				TimeoutSeconds     *int32
				Service            *struct{ Name, Namespace string }
				ReinvocationPolicy *string
			}
			var hooks []hook
			raw, _, _ := unstructured.NestedSlice(u.Object, "webhooks")
			for _, w := range raw {
				b, _ := json.Marshal(w)
				var h struct {
					Name               string `json:"name"`
					FailurePolicy      *string
					TimeoutSeconds     *int32
					ReinvocationPolicy *string `json:"reinvocationPolicy"`
					ClientConfig       struct {
						Service *struct{ Name, Namespace string }
					}
				}
				if err := json.Unmarshal(b, &h); err != nil {
					t.Fatal(err)
				}
				hooks = append(hooks, hook{h.Name, h.FailurePolicy, h.TimeoutSeconds, h.ClientConfig.Service, h.ReinvocationPolicy})
			}
			if len(hooks) == 0 {
				bad("%s %s has no webhooks", u.GetKind(), u.GetName())
			}
			for _, h := range hooks {
				// Ignore is documented in deploy/webhooks: image-cloner must never lock a cluster.
				if h.FailurePolicy == nil || *h.FailurePolicy != "Ignore" {
					bad("webhook %s: failurePolicy must be Ignore (deploy/webhooks explains why)", h.Name)
				}
				if h.TimeoutSeconds == nil || *h.TimeoutSeconds > 5 {
					bad("webhook %s: timeoutSeconds must be set and at most 5", h.Name)
				}
				if h.Service == nil || find(objs, "Service", h.Service.Name) == nil {
					bad("webhook %s: its Service is not in the overlay", h.Name)
				}
				// IfNeeded: sidecars injected by webhooks that run after ours are rewritten too.
				if u.GetKind() == "MutatingWebhookConfiguration" && (h.ReinvocationPolicy == nil || *h.ReinvocationPolicy != "IfNeeded") {
					bad("webhook %s: reinvocationPolicy must be IfNeeded (deploy/webhooks explains why)", h.Name)
				}
			}
		case "ClusterRole", "Role":
			r := as[rbacv1.ClusterRole](t, u)
			for _, rule := range r.Rules {
				for _, s := range append(append(append([]string{}, rule.Verbs...), rule.Resources...), rule.APIGroups...) {
					if s == "*" {
						bad("%s %s: wildcard in %v", u.GetKind(), u.GetName(), rule)
					}
				}
			}
		}
	}
	for _, rule := range rulesOf(t, objs, "image-cloner-hub") {
		if w := workloadWrites(rule); len(w) > 0 {
			bad("the hub's ServiceAccount may %v: it must never write workloads (the agent patches them)", w)
		}
	}
	return problems
}

// checkPod returns what makes a pod spec less than non-root, read-only and bounded.
func checkPod(name string, spec *corev1.PodSpec) []string {
	var problems []string
	podNonRoot := spec.SecurityContext != nil && spec.SecurityContext.RunAsNonRoot != nil && *spec.SecurityContext.RunAsNonRoot
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		where := fmt.Sprintf("%s/%s", name, c.Name)
		sc := c.SecurityContext
		nonRoot := podNonRoot
		if sc != nil && sc.RunAsNonRoot != nil {
			nonRoot = *sc.RunAsNonRoot
		}
		if !nonRoot {
			problems = append(problems, where+": runAsNonRoot is not true")
		}
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			problems = append(problems, where+": readOnlyRootFilesystem is not true")
		}
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			problems = append(problems, where+": allowPrivilegeEscalation is not false")
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			problems = append(problems, where+": no cpu and memory requests")
		}
		if c.Resources.Limits.Memory().IsZero() {
			problems = append(problems, where+": no memory limit")
		}
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			problems = append(problems, where+": needs a readiness and a liveness probe")
		}
		if !strings.HasPrefix(c.Image, "image-cloner/") {
			problems = append(problems, where+": image "+c.Image+" is not an image-cloner/ placeholder that kustomize `images:` overrides")
		}
	}
	return problems
}

// rulesOf returns every rule bound to ServiceAccount image-cloner-system/sa in the overlay.
func rulesOf(t testing.TB, objs []*unstructured.Unstructured, sa string) []rbacv1.PolicyRule {
	var rules []rbacv1.PolicyRule
	for _, u := range objs {
		if u.GetKind() != "ClusterRoleBinding" && u.GetKind() != "RoleBinding" {
			continue
		}
		b := as[rbacv1.RoleBinding](t, u)
		bound := false
		for _, s := range b.Subjects {
			bound = bound || (s.Kind == "ServiceAccount" && s.Name == sa && s.Namespace == "image-cloner-system")
		}
		if !bound {
			continue
		}
		role := find(objs, b.RoleRef.Kind, b.RoleRef.Name)
		if role == nil {
			t.Errorf("%s %s refers to %s %s, which is not in the overlay", u.GetKind(), b.Name, b.RoleRef.Kind, b.RoleRef.Name)
			continue
		}
		rules = append(rules, as[rbacv1.ClusterRole](t, role).Rules...)
	}
	return rules
}

// workloadWrites returns the write verbs a rule grants on workloads or Pods.
func workloadWrites(rule rbacv1.PolicyRule) []string {
	workloads := map[string]bool{"apps": true, "batch": true, "": true}
	kinds := map[string]bool{"deployments": true, "daemonsets": true, "statefulsets": true, "replicasets": true,
		"jobs": true, "cronjobs": true, "pods": true, "replicationcontrollers": true, "*": true}
	touches := false
	for _, g := range rule.APIGroups {
		for _, r := range rule.Resources {
			if (workloads[g] || g == "*") && kinds[strings.Split(r, "/")[0]] {
				touches = true
			}
		}
	}
	if !touches {
		return nil
	}
	var w []string
	for _, v := range rule.Verbs {
		switch v {
		case "get", "list", "watch":
		default:
			w = append(w, v)
		}
	}
	return w
}

// TestCheckObjects_catchesBrokenManifests makes sure the checks above can fail: each mutation
// of a rendered overlay must be reported.
func TestCheckObjects_catchesBrokenManifests(t *testing.T) {
	mutations := map[string]func(objs []*unstructured.Unstructured){
		"root container": func(objs []*unstructured.Unstructured) {
			d := find(objs, "Deployment", "image-cloner-hub")
			_ = unstructured.SetNestedField(d.Object, false, "spec", "template", "spec", "securityContext", "runAsNonRoot")
		},
		"writable root filesystem": func(objs []*unstructured.Unstructured) {
			d := find(objs, "Deployment", "image-cloner-agent")
			cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
			_ = unstructured.SetNestedField(cs[0].(map[string]any), false, "securityContext", "readOnlyRootFilesystem")
			_ = unstructured.SetNestedSlice(d.Object, cs, "spec", "template", "spec", "containers")
		},
		"no requests": func(objs []*unstructured.Unstructured) {
			d := find(objs, "Deployment", "image-cloner-hub")
			cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
			unstructured.RemoveNestedField(cs[0].(map[string]any), "resources", "requests")
			_ = unstructured.SetNestedSlice(d.Object, cs, "spec", "template", "spec", "containers")
		},
		"failurePolicy Fail": func(objs []*unstructured.Unstructured) {
			w := find(objs, "ValidatingWebhookConfiguration", "image-cloner-validating")
			hs, _, _ := unstructured.NestedSlice(w.Object, "webhooks")
			hs[0].(map[string]any)["failurePolicy"] = "Fail"
			_ = unstructured.SetNestedSlice(w.Object, hs, "webhooks")
		},
		"timeout 30s": func(objs []*unstructured.Unstructured) {
			w := find(objs, "MutatingWebhookConfiguration", "image-cloner-mutating")
			hs, _, _ := unstructured.NestedSlice(w.Object, "webhooks")
			hs[1].(map[string]any)["timeoutSeconds"] = int64(30)
			_ = unstructured.SetNestedSlice(w.Object, hs, "webhooks")
		},
		"reinvocation Never": func(objs []*unstructured.Unstructured) {
			w := find(objs, "MutatingWebhookConfiguration", "image-cloner-mutating")
			hs, _, _ := unstructured.NestedSlice(w.Object, "webhooks")
			hs[0].(map[string]any)["reinvocationPolicy"] = "Never"
			_ = unstructured.SetNestedSlice(w.Object, hs, "webhooks")
		},
		"hub patches deployments": func(objs []*unstructured.Unstructured) {
			r := find(objs, "ClusterRole", "image-cloner-hub")
			rules, _, _ := unstructured.NestedSlice(r.Object, "rules")
			rules[0].(map[string]any)["verbs"] = []any{"get", "list", "watch", "patch"}
			_ = unstructured.SetNestedSlice(r.Object, rules, "rules")
		},
	}
	for name, mutate := range mutations {
		t.Run(name, func(t *testing.T) {
			objs := render(t, filepath.Join("overlays", "single-cluster"))
			if p := checkObjects(t, objs); len(p) > 0 {
				t.Fatalf("the overlay as shipped already fails: %v", p)
			}
			mutate(objs)
			if p := checkObjects(t, objs); len(p) == 0 {
				t.Errorf("checkObjects missed the mutation %q", name)
			}
		})
	}
}

// TestOverlays_imagesOverridable checks the documented way to pin images: an overlay of an
// overlay with kustomize `images:` replaces both placeholders.
func TestOverlays_imagesOverridable(t *testing.T) {
	dir := t.TempDir()
	base, err := filepath.Abs(filepath.Join("overlays", "single-cluster"))
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(dir, base)
	if err != nil {
		t.Fatal(err)
	}
	k := fmt.Sprintf(`resources: [%q]
images:
  - {name: image-cloner/hub, newName: ghcr.io/acme/hub, newTag: v1.2.3}
  - {name: image-cloner/agent, newName: ghcr.io/acme/agent, digest: "sha256:%s"}
`, rel, strings.Repeat("a", 64))
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o600); err != nil {
		t.Fatal(err)
	}
	objs := render(t, dir)
	want := map[string]string{
		"image-cloner-hub":   "ghcr.io/acme/hub:v1.2.3",
		"image-cloner-agent": "ghcr.io/acme/agent@sha256:" + strings.Repeat("a", 64),
	}
	for name, image := range want {
		d := find(objs, "Deployment", name)
		if d == nil {
			t.Fatalf("no Deployment %s", name)
		}
		if got := as[appsv1.Deployment](t, d).Spec.Template.Spec.Containers[0].Image; got != image {
			t.Errorf("Deployment %s runs %s, want %s", name, got, image)
		}
	}
}

// TestSecrets_noRealCredentials decodes every YAML file under deploy/ and fails on a Secret
// whose Docker config holds anything but a placeholder.
func TestSecrets_noRealCredentials(t *testing.T) {
	var seen int
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return err
		}
		for _, u := range decodeFile(t, path) {
			if u.GetKind() != "Secret" {
				continue
			}
			seen++
			for _, p := range secretProblems(as[corev1.Secret](t, u)) {
				t.Errorf("%s: Secret %s: %s", path, u.GetName(), p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 2 {
		t.Errorf("found %d Secrets under deploy/, want at least the two templates in hub/credentials.example.yaml", seen)
	}
}

// secretProblems says which values of s look like real credentials: anything in a Docker config
// but a placeholder (REPLACE...), and any other data at all.
func secretProblems(s *corev1.Secret) []string {
	var problems []string
	values := map[string]string{}
	for k, v := range s.StringData {
		values[k] = v
	}
	for k, v := range s.Data {
		values[k] = string(v)
	}
	for k, v := range values {
		if k != corev1.DockerConfigJsonKey {
			problems = append(problems, fmt.Sprintf("key %q: only %s templates belong in deploy/", k, corev1.DockerConfigJsonKey))
			continue
		}
		var cfg struct {
			Auths map[string]map[string]string `json:"auths"`
		}
		if err := json.Unmarshal([]byte(v), &cfg); err != nil {
			problems = append(problems, fmt.Sprintf("%s is not a Docker config.json: %v", k, err))
			continue
		}
		for registry, entry := range cfg.Auths {
			for field, value := range entry {
				if value == "" || strings.HasPrefix(value, "REPLACE") {
					continue
				}
				if b, err := base64.StdEncoding.DecodeString(value); err == nil && strings.Contains(string(b), "REPLACE") {
					continue
				}
				problems = append(problems, fmt.Sprintf("auths[%s].%s looks like a real credential: use a REPLACE_... placeholder", registry, field))
			}
		}
	}
	return problems
}

func TestSecretProblems_flagsRealLookingCredentials(t *testing.T) {
	real := base64.StdEncoding.EncodeToString([]byte("acme+pusher:S3cr3tT0ken"))
	for name, s := range map[string]*corev1.Secret{
		"auth":     {StringData: map[string]string{".dockerconfigjson": `{"auths":{"quay.io":{"auth":"` + real + `"}}}`}},
		"password": {Data: map[string][]byte{".dockerconfigjson": []byte(`{"auths":{"quay.io":{"username":"REPLACE_ME","password":"hunter2"}}}`)}},
		"token":    {StringData: map[string]string{"token": "abc"}},
	} {
		if len(secretProblems(s)) == 0 {
			t.Errorf("%s: a real-looking credential went unnoticed", name)
		}
	}
	placeholder := &corev1.Secret{StringData: map[string]string{".dockerconfigjson": `{"auths":{"quay.io":{"auth":"REPLACE_WITH_BASE64"}}}`}}
	if p := secretProblems(placeholder); len(p) > 0 {
		t.Errorf("a placeholder was flagged: %v", p)
	}
}
