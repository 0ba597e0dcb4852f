package deploy_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/internal/enroll"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

const systemNS = "image-cloner-system"

// identity is a ServiceAccount as the API server authorizes it.
type identity struct {
	name   string // for messages
	user   string
	groups []string
}

func serviceAccount(ns, name string) identity {
	return identity{
		name:   ns + "/" + name,
		user:   "system:serviceaccount:" + ns + ":" + name,
		groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
}

var (
	agentSA = serviceAccount(systemNS, "image-cloner-agent")
	// memberSA is who the hub is in a member (`hub register`), and in the hub cluster (the hub
	// overlay): the same name, in different clusters.
	memberSA = serviceAccount(systemNS, enroll.ServiceAccountName)
)

// access is one request and whether it must be allowed.
type access struct {
	attrs   authorizationv1.ResourceAttributes
	allowed bool
	why     string
}

func may(verb, group, resource, ns, name string, why string) access {
	return access{authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: resource, Namespace: ns, Name: name}, true, why}
}

func mayNot(verb, group, resource, ns, name string, why string) access {
	return access{authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: resource, Namespace: ns, Name: name}, false, why}
}

func sub(a access, subresource string) access {
	a.attrs.Subresource = subresource
	return a
}

// forbiddenToAll are requests none of image-cloner's identities may make, in any cluster: they
// would let a stolen token take the cluster over or read what is not its business.
var forbiddenToAll = []access{
	mayNot("create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", "grant itself more"),
	mayNot("update", "rbac.authorization.k8s.io", "clusterroles", "", "image-cloner-agent", "widen its own role"),
	mayNot("patch", "rbac.authorization.k8s.io", "roles", systemNS, "image-cloner-agent", "widen its own role"),
	mayNot("create", "rbac.authorization.k8s.io", "rolebindings", "default", "", "grant itself more"),
	mayNot("escalate", "rbac.authorization.k8s.io", "clusterroles", "", "", "escalate"),
	mayNot("bind", "rbac.authorization.k8s.io", "clusterroles", "", "cluster-admin", "bind cluster-admin"),
	mayNot("impersonate", "", "users", "", "admin", "impersonate a user"),
	mayNot("impersonate", "", "groups", "", "system:masters", "impersonate a group"),
	mayNot("impersonate", "", "serviceaccounts", "kube-system", "default", "impersonate a ServiceAccount"),
	mayNot("create", "", "serviceaccounts", "default", "", "make identities"),
	sub(mayNot("create", "", "serviceaccounts", "kube-system", "default", "mint tokens"), "token"),
	mayNot("create", "", "pods", "default", "", "run code"),
	sub(mayNot("create", "", "pods", "default", "x", "run code in a Pod"), "exec"),
	mayNot("delete", "", "namespaces", "", "default", "delete namespaces"),
	mayNot("delete", "apps", "deployments", "default", "x", "delete workloads"),
	mayNot("get", "", "secrets", "kube-system", "bootstrap-token-abc", "read kube-system Secrets by name"),
	mayNot("update", "apiextensions.k8s.io", "customresourcedefinitions", "", "clonedimages.image-cloner.io", "change the CRD"),
	mayNot("update", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "other-webhook", "change another's webhook"),
	mayNot("create", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", "add a webhook"),
	sub(mayNot("update", "certificates.k8s.io", "certificatesigningrequests", "", "x", "approve certificates"), "approval"),
	sub(mayNot("get", "", "nodes", "", "n", "reach kubelets"), "proxy"),
	mayNot("*", "*", "*", "", "", "everything"),
}

// TestRBAC_leastPrivilege applies the agent overlay and what `hub register` creates to a real
// member API server, and the hub overlay to a hub API server, and asks the API servers
// (SubjectAccessReview) what each ServiceAccount may do: each can do what its job needs and
// nothing in forbiddenToAll. A few of the answers are cross-checked with real requests made as
// the ServiceAccount (impersonation), so the reviews are known to match enforcement.
func TestRBAC_leastPrivilege(t *testing.T) {
	cs := testenv.StartClusters(t, testenv.ClusterOptions{}, "rbac-member", "rbac-hub")
	member, hub := cs[0], cs[1]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	apply(ctx, t, member.Client, render(t, filepath.Join("overlays", "agent")))
	if err := enroll.Apply(ctx, member.Client, systemNS); err != nil {
		t.Fatal(err)
	}
	apply(ctx, t, hub.Client, render(t, filepath.Join("overlays", "hub")))
	// The API server's authorizer works from a cache of the RBAC objects, which lags behind
	// their creation: ask nothing before every binding of each identity is in it.
	waitForBindings(ctx, t, member.Client, agentSA)
	waitForBindings(ctx, t, member.Client, memberSA)
	waitForBindings(ctx, t, hub.Client, memberSA)

	workloads := []struct{ group, resource string }{
		{"apps", "deployments"}, {"apps", "daemonsets"}, {"apps", "statefulsets"}, {"batch", "cronjobs"},
	}
	var agent []access
	for _, w := range workloads {
		for _, verb := range []string{"get", "list", "watch", "update"} {
			agent = append(agent, may(verb, w.group, w.resource, "app", "", "patch workloads to the backup"))
		}
		agent = append(agent, mayNot("create", w.group, w.resource, "app", "", "only patches existing workloads"),
			mayNot("delete", w.group, w.resource, "app", "x", "only patches existing workloads"))
	}
	agent = append(agent,
		may("get", "apps", "replicasets", "app", "web-7d4b9", "REWRITE_MODE=auto: whether a Deployment owns a Pod's ReplicaSet"),
		mayNot("list", "apps", "replicasets", "app", "", "reads one ReplicaSet per Pod, caches none"),
		mayNot("update", "apps", "replicasets", "app", "web-7d4b9", "patches Deployments, never their ReplicaSets"),
		may("create", "", "secrets", "app", "", "the pull Secret copy in each namespace"),
		may("update", "", "secrets", "app", v1alpha1.NamespacePullSecretName, "the pull Secret copy in each namespace"),
		may("delete", "", "secrets", "app", v1alpha1.NamespacePullSecretName, "removing copies from ignored namespaces"),
		// The cache lists and watches the copies with a metadata.name field selector: the API
		// server authorizes that as a request for that name.
		may("list", "", "secrets", "", v1alpha1.NamespacePullSecretName, "watch the copies by name"),
		may("watch", "", "secrets", "", v1alpha1.NamespacePullSecretName, "watch the copies by name"),
		mayNot("list", "", "secrets", "", "", "no Secret but the copies"),
		mayNot("get", "", "secrets", "app", "database", "no Secret but the copies"),
		mayNot("update", "", "secrets", "app", "database", "no Secret but the copies"),
		may("get", "", "secrets", systemNS, v1alpha1.PullSecretName, "the source of the copies"),
		may("watch", "", "secrets", systemNS, v1alpha1.PullSecretName, "the source of the copies"),
		mayNot("update", "", "secrets", systemNS, v1alpha1.PullSecretName, "the source is the hub's to write"),
		may("update", "", "secrets", systemNS, "image-cloner-agent-webhook-certs", "built-in certificates"),
		mayNot("get", "", "secrets", systemNS, "image-cloner-push-credentials", "no other Secret of its namespace"),
		mayNot("list", "", "secrets", systemNS, "", "no other Secret of its namespace"),
		may("get", "image-cloner.io", "clonedimages", "", "", "what is backed up"),
		may("watch", "image-cloner.io", "clonedimages", "", "", "what is backed up"),
		may("create", "image-cloner.io", "clonedimages", "", "", "request a backup (Pending) from the webhook"),
		mayNot("update", "image-cloner.io", "clonedimages", "", "x", "only the hub records backups"),
		sub(mayNot("update", "image-cloner.io", "clonedimages", "", "x", "only the hub marks backups Ready"), "status"),
		mayNot("delete", "image-cloner.io", "clonedimages", "", "x", "only the hub records backups"),
		may("create", "coordination.k8s.io", "leases", systemNS, "", "leader election"),
		may("update", "coordination.k8s.io", "leases", systemNS, "image-cloner-agent", "leader election"),
		mayNot("update", "coordination.k8s.io", "leases", "kube-system", "kube-controller-manager", "others' leases"),
		may("create", "events.k8s.io", "events", "app", "", "ImagesPatched"),
		may("get", "", "configmaps", systemNS, v1alpha1.ConfigMapName, "its configuration"),
		mayNot("get", "", "configmaps", "kube-system", "", "others' configuration"),
		may("update", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "image-cloner-validating", "inject its CA"),
		may("update", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "image-cloner-mutating", "inject its CA"),
		mayNot("update", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "cert-manager-webhook", "only its own"),
		mayNot("list", "admissionregistration.k8s.io", "validatingwebhookconfigurations", "", "", "only its own, by name"),
		mayNot("update", "", "namespaces", "", "app", "read-only namespaces"),
	)
	var inMember []access
	for _, w := range append(workloads, struct{ group, resource string }{"batch", "jobs"}, struct{ group, resource string }{"", "pods"}) {
		inMember = append(inMember,
			may("list", w.group, w.resource, "", "", "find the images to back up"),
			may("watch", w.group, w.resource, "", "", "find the images to back up"),
			mayNot("update", w.group, w.resource, "app", "x", "the agent patches, not the hub"),
			mayNot("patch", w.group, w.resource, "app", "x", "the agent patches, not the hub"))
	}
	inMember = append(inMember,
		may("create", "image-cloner.io", "clonedimages", "", "", "record backups"),
		sub(may("update", "image-cloner.io", "clonedimages", "", "x", "record backups"), "status"),
		may("update", "", "secrets", systemNS, v1alpha1.PullSecretName, "deliver the pull-only credentials"),
		mayNot("get", "", "secrets", systemNS, "image-cloner-agent-webhook-certs", "no other Secret of its namespace"),
		mayNot("list", "", "secrets", systemNS, "", "no other Secret of its namespace"),
		mayNot("get", "", "secrets", "app", v1alpha1.NamespacePullSecretName, "no Secret outside its namespace"),
		mayNot("create", "", "secrets", systemNS, "", "no new Secrets"),
		mayNot("update", "", "configmaps", systemNS, v1alpha1.ConfigMapName, "the agent's configuration is the member's"),
	)
	inHub := []access{
		may("watch", "", "secrets", systemNS, "", "registrations and credentials"),
		may("get", "", "configmaps", systemNS, v1alpha1.ConfigMapName, "its configuration"),
		may("update", "coordination.k8s.io", "leases", systemNS, "image-cloner-hub", "leader election"),
		mayNot("update", "", "secrets", systemNS, "image-cloner-push-credentials", "never writes a Secret"),
		mayNot("get", "", "secrets", "default", "", "only its namespace"),
		mayNot("list", "", "secrets", "", "", "only its namespace"),
		mayNot("list", "apps", "deployments", "", "", "members are reached by kubeconfig, not by this SA"),
		mayNot("update", "apps", "deployments", systemNS, "image-cloner-hub", "no workload writes"),
		mayNot("create", "image-cloner.io", "clonedimages", "", "", "members only"),
	}

	for _, tc := range []struct {
		name    string
		cluster *testenv.Cluster
		who     identity
		want    []access
	}{
		{"agent in a member", member, agentSA, append(agent, forbiddenToAll...)},
		{"hub register's ServiceAccount in a member", member, memberSA, append(inMember, forbiddenToAll...)},
		{"hub overlay's ServiceAccount in the hub cluster", hub, memberSA, append(inHub, forbiddenToAll...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range violations(ctx, t, tc.cluster.Client, tc.who, tc.want) {
				t.Error(p)
			}
		})
	}

	// The check can fail: a ServiceAccount bound to cluster-admin violates every entry of
	// forbiddenToAll, and one with no role at all every "may".
	t.Run("the check catches excess and lack", func(t *testing.T) {
		if err := member.Client.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "too-powerful"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "too-powerful", Namespace: "default"}},
		}); err != nil {
			t.Fatal(err)
		}
		admin := serviceAccount("default", "too-powerful")
		waitForBindings(ctx, t, member.Client, admin)
		if got := violations(ctx, t, member.Client, admin, forbiddenToAll); len(got) != len(forbiddenToAll) {
			t.Errorf("cluster-admin: %d violations of %d forbidden requests, want all:\n%v", len(got), len(forbiddenToAll), got)
		}
		nobody := serviceAccount("default", "nobody")
		if got := violations(ctx, t, member.Client, nobody, agent); len(got) != countAllowed(agent) {
			t.Errorf("no role: %d violations, want one per allowed request of the agent (%d):\n%v", len(got), countAllowed(agent), got)
		}
	})

	// The reviews match enforcement: the same answers from real requests as each ServiceAccount.
	t.Run("real requests", func(t *testing.T) {
		c := member.Client
		for _, ns := range []string{"app", "other"} {
			if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
				t.Fatal(err)
			}
		}
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "database"}, StringData: map[string]string{"password": "x"}}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web"},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.25"}}},
				},
			},
		}
		for _, o := range []client.Object{secret, d} {
			if err := c.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		asAgent, asHub := impersonate(t, member, agentSA), impersonate(t, member, memberSA)
		expect := func(what string, err error, allowed bool) {
			t.Helper()
			switch {
			case allowed && err != nil:
				t.Errorf("%s: %v, want allowed", what, err)
			case !allowed && !apierrors.IsForbidden(err):
				t.Errorf("%s: %v, want Forbidden", what, err)
			}
		}
		var dep appsv1.Deployment
		expect("the agent gets a Deployment", asAgent.Get(ctx, client.ObjectKeyFromObject(d), &dep), true)
		if dep.Annotations == nil {
			dep.Annotations = map[string]string{}
		}
		dep.Annotations["rbac-test"] = "patched"
		expect("the agent updates a Deployment", asAgent.Update(ctx, &dep), true)
		expect("the agent deletes a Deployment", asAgent.Delete(ctx, d.DeepCopy()), false)
		expect("the agent deletes a namespace", asAgent.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}}), false)
		expect("the agent creates a ClusterRoleBinding", asAgent.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "escalate"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "image-cloner-agent", Namespace: systemNS}},
		}), false)
		expect("the agent reads a Secret in another namespace", asAgent.Get(ctx, client.ObjectKeyFromObject(secret), &corev1.Secret{}), false)
		expect("the agent lists Secrets", asAgent.List(ctx, &corev1.SecretList{}), false)
		expect("the agent lists its copies by name", asAgent.List(ctx, &corev1.SecretList{},
			client.MatchingFields{"metadata.name": v1alpha1.NamespacePullSecretName}), true)
		expect("hub register's ServiceAccount gets a Deployment", asHub.Get(ctx, client.ObjectKeyFromObject(d), &appsv1.Deployment{}), true)
		dep.Annotations["rbac-test"] = "by the hub"
		expect("hub register's ServiceAccount updates a Deployment", asHub.Update(ctx, &dep), false)
		expect("hub register's ServiceAccount reads a Secret in another namespace", asHub.Get(ctx, client.ObjectKeyFromObject(secret), &corev1.Secret{}), false)
		expect("hub register's ServiceAccount lists Secrets", asHub.List(ctx, &corev1.SecretList{}, client.InNamespace(systemNS)), false)
		ci := &v1alpha1.ClonedImage{ObjectMeta: metav1.ObjectMeta{Name: "rbac-test"}, Spec: v1alpha1.ClonedImageSpec{Source: "docker.io/library/nginx:1.25"}}
		expect("the agent creates a ClonedImage", asAgent.Create(ctx, ci), true)
		ci.Status.Phase = v1alpha1.PhaseReady
		expect("the agent marks a ClonedImage Ready", asAgent.Status().Update(ctx, ci), false)
		expect("hub register's ServiceAccount marks a ClonedImage Ready", asHub.Status().Update(ctx, ci), true)
	})
}

// waitForBindings waits until the API server's authorizer has every RoleBinding and
// ClusterRoleBinding that names who (and the role each refers to): for each, a
// SubjectAccessReview of one request its role's first rule grants must come back allowed. The
// RBAC authorizer reads informer caches, so a binding just created is not in effect yet; asking
// before is what made the cluster-admin control see 21 of 22 requests forbidden under load.
func waitForBindings(ctx context.Context, t *testing.T, c client.Client, who identity) {
	t.Helper()
	type bound struct {
		what  string
		ns    string // "" for a ClusterRoleBinding
		role  rbacv1.RoleRef
		names []rbacv1.Subject
	}
	var all []bound
	var crbs rbacv1.ClusterRoleBindingList
	if err := c.List(ctx, &crbs); err != nil {
		t.Fatalf("listing ClusterRoleBindings: %v", err)
	}
	for _, b := range crbs.Items {
		all = append(all, bound{"ClusterRoleBinding " + b.Name, "", b.RoleRef, b.Subjects})
	}
	var rbs rbacv1.RoleBindingList
	if err := c.List(ctx, &rbs); err != nil {
		t.Fatalf("listing RoleBindings: %v", err)
	}
	for _, b := range rbs.Items {
		all = append(all, bound{"RoleBinding " + b.Namespace + "/" + b.Name, b.Namespace, b.RoleRef, b.Subjects})
	}
	n := 0
	for _, b := range all {
		if !slices.ContainsFunc(b.names, who.is) {
			continue
		}
		n++
		rules, err := roleRules(ctx, c, b.ns, b.role)
		if err != nil {
			t.Fatalf("%s: %v", b.what, err)
		}
		if len(rules) == 0 {
			continue // grants nothing: nothing to wait for
		}
		spec := grantedBy(rules[0], b.ns)
		spec.User, spec.Groups = who.user, who.groups
		reviews := 0
		err = testenv.WaitFor(ctx, time.Minute, func(ctx context.Context) (bool, error) {
			reviews++
			sar := &authorizationv1.SubjectAccessReview{Spec: spec}
			if err := c.Create(ctx, sar); err != nil {
				return false, err
			}
			return sar.Status.Allowed, nil
		})
		if err != nil {
			t.Fatalf("%s for %s never took effect: %v", b.what, who.name, err)
		}
		if reviews > 1 {
			testenv.Report(t, "%s for %s took effect after %d reviews", b.what, who.name, reviews)
		}
	}
	if n == 0 {
		t.Fatalf("no binding names %s", who.name)
	}
}

// is reports whether subject s designates the identity.
func (who identity) is(s rbacv1.Subject) bool {
	switch s.Kind {
	case rbacv1.ServiceAccountKind:
		return who.user == "system:serviceaccount:"+s.Namespace+":"+s.Name
	case rbacv1.UserKind:
		return who.user == s.Name
	case rbacv1.GroupKind:
		return slices.Contains(who.groups, s.Name)
	}
	return false
}

func roleRules(ctx context.Context, c client.Client, ns string, ref rbacv1.RoleRef) ([]rbacv1.PolicyRule, error) {
	if ref.Kind == "Role" {
		var r rbacv1.Role
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, &r); err != nil {
			return nil, fmt.Errorf("getting Role %s/%s: %w", ns, ref.Name, err)
		}
		return r.Rules, nil
	}
	var r rbacv1.ClusterRole
	if err := c.Get(ctx, client.ObjectKey{Name: ref.Name}, &r); err != nil {
		return nil, fmt.Errorf("getting ClusterRole %s: %w", ref.Name, err)
	}
	return r.Rules, nil
}

// grantedBy returns a request that rule grants, in namespace ns ("" for cluster-wide).
func grantedBy(rule rbacv1.PolicyRule, ns string) authorizationv1.SubjectAccessReviewSpec {
	first := func(list []string) string {
		if len(list) == 0 {
			return ""
		}
		return list[0]
	}
	if len(rule.NonResourceURLs) > 0 {
		return authorizationv1.SubjectAccessReviewSpec{NonResourceAttributes: &authorizationv1.NonResourceAttributes{
			Path: strings.TrimSuffix(first(rule.NonResourceURLs), "*"), Verb: first(rule.Verbs)}}
	}
	resource, sub, _ := strings.Cut(first(rule.Resources), "/")
	return authorizationv1.SubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
		Namespace: ns, Verb: first(rule.Verbs), Group: first(rule.APIGroups),
		Resource: resource, Subresource: sub, Name: first(rule.ResourceNames),
	}}
}

func countAllowed(list []access) int {
	n := 0
	for _, a := range list {
		if a.allowed {
			n++
		}
	}
	return n
}

// violations asks the API server about each request as who, and describes every answer that
// is not the wanted one.
func violations(ctx context.Context, t *testing.T, c client.Client, who identity, want []access) []string {
	t.Helper()
	var out []string
	for _, a := range want {
		attrs := a.attrs
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: who.user, Groups: who.groups, ResourceAttributes: &attrs,
		}}
		if err := c.Create(ctx, sar); err != nil {
			t.Fatalf("SubjectAccessReview: %v", err)
		}
		if sar.Status.Allowed != a.allowed {
			verdict := "may not"
			if sar.Status.Allowed {
				verdict = "may"
			}
			out = append(out, fmt.Sprintf("%s %s %s (%s), want allowed=%v", who.name, verdict, describe(attrs), a.why, a.allowed))
		}
	}
	return out
}

func describe(a authorizationv1.ResourceAttributes) string {
	r := a.Resource
	if a.Group != "" {
		r += "." + a.Group
	}
	if a.Subresource != "" {
		r += "/" + a.Subresource
	}
	s := a.Verb + " " + r
	if a.Name != "" {
		s += " " + a.Name
	}
	if a.Namespace != "" {
		s += " in " + a.Namespace
	} else {
		s += " (cluster-wide)"
	}
	return s
}

// impersonate returns a client that acts as who, through the admin's right to impersonate.
func impersonate(t *testing.T, c *testenv.Cluster, who identity) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(c.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: who.user, Groups: who.groups}
	cl, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}
