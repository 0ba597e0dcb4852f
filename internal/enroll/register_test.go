package enroll_test

import (
	"testing"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/image-cloner/image-cloner/internal/enroll"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// TestRules_grantNoSecretsAndNoWildcards guards the least-privilege promise at the level of the
// rules themselves; the hub tests check it with real requests.
func TestRules_grantNoSecretsAndNoWildcards(t *testing.T) {
	g := NewWithT(t)
	for _, r := range enroll.Rules() {
		g.Expect(r.Resources).NotTo(ContainElement("secrets"))
		g.Expect(r.Resources).NotTo(ContainElement("*"))
		g.Expect(r.Verbs).NotTo(ContainElement("*"))
		g.Expect(r.Verbs).NotTo(ContainElement("delete"))
		g.Expect(r.APIGroups).NotTo(ContainElement("*"))
	}
	pull := enroll.PullSecretRules()
	g.Expect(pull).To(HaveLen(1))
	g.Expect(pull[0].ResourceNames).To(Equal([]string{v1alpha1.PullSecretName}))
	g.Expect(pull[0].Verbs).NotTo(ContainElement("list"), "list ignores resourceNames")
	g.Expect(pull[0].Verbs).NotTo(ContainElement("watch"))
	g.Expect(pull[0].Verbs).NotTo(ContainElement("create"), "create cannot be restricted by name")
}

func TestObjects_bindTheServiceAccountInTheNamespace(t *testing.T) {
	g := NewWithT(t)
	var bindings int
	for _, o := range enroll.Objects("ns") {
		switch b := o.(type) {
		case *rbacv1.ClusterRoleBinding:
			bindings++
			g.Expect(b.Subjects).To(ConsistOf(rbacv1.Subject{Kind: "ServiceAccount", Name: enroll.ServiceAccountName, Namespace: "ns"}))
		case *rbacv1.RoleBinding:
			bindings++
			g.Expect(b.Namespace).To(Equal("ns"))
			g.Expect(b.RoleRef.Name).To(Equal(enroll.RoleName))
		}
	}
	g.Expect(bindings).To(Equal(2))
}
