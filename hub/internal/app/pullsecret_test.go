package app_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/internal/enroll"
	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// setPullSecret creates (or replaces the payload of) the hub's pull-only Secret.
func (f *fleet) setPullSecret(payload string) {
	f.t.Helper()
	g := NewWithT(f.t)
	ctx := f.t.Context()
	s := &corev1.Secret{}
	err := f.hub.Client.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: v1alpha1.PullSecretName}, s)
	if client.IgnoreNotFound(err) != nil {
		g.Expect(err).NotTo(HaveOccurred())
	}
	if err != nil {
		g.Expect(f.hub.Client.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: v1alpha1.PullSecretName},
			Type:       corev1.SecretTypeDockerConfigJson,
			Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(payload)},
		})).To(Succeed())
		return
	}
	s.Data = map[string][]byte{corev1.DockerConfigJsonKey: []byte(payload)}
	g.Expect(f.hub.Client.Update(ctx, s)).To(Succeed())
}

// waitPullSecret waits until member c holds payload in Secret namespace/image-cloner-pull-credentials.
func waitPullSecret(t *testing.T, c *testenv.Cluster, namespace, payload string) {
	t.Helper()
	var last string
	err := testenv.WaitFor(t.Context(), wait, func(ctx context.Context) (bool, error) {
		var got corev1.Secret
		err := c.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: v1alpha1.PullSecretName}, &got)
		last = string(got.Data[corev1.DockerConfigJsonKey])
		return err == nil && last == payload, client.IgnoreNotFound(err)
	})
	NewWithT(t).Expect(err).NotTo(HaveOccurred(), "%s never held the pull credentials in %s (last: %q)", c.Name, namespace, last)
}

// pullSecretErrors is how many reconciles of the pullsecret controllers failed in this process.
func pullSecretErrors(t *testing.T) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	for _, fam := range families {
		if fam.GetName() != "controller_runtime_reconcile_errors_total" {
			continue
		}
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "pullsecret" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestPullSecret_retriedWithBackoffInTheRegisteredNamespace registers a member the way
// `hub register --namespace team-x` does, but with the Role's binding taken away: the first
// deliveries fail (Forbidden) and nothing else happens in the hub or the member to trigger
// another; once the binding is granted, the retries with backoff deliver the Secret, in
// team-x (where the Role is), not in image-cloner-system.
func TestPullSecret_retriedWithBackoffInTheRegisteredNamespace(t *testing.T) {
	g := NewWithT(t)
	f := startFleet(t, fleetOptions{isolated: true, members: 1})
	ctx := t.Context()
	m1 := f.members[0]
	const ns = "team-x"
	const payload = `{"auths":{"backup.example":{"auth":"cHVsbGVyOnB1bGw="}}}`
	f.setPullSecret(payload)

	s, err := enroll.Register(ctx, enroll.Options{Member: m1.Config, Name: "teamx", Namespace: ns})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Annotations).To(HaveKeyWithValue(registration.NamespaceAnnotation, ns))
	binding := &rbacv1.RoleBinding{}
	g.Expect(m1.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: enroll.RoleName}, binding)).To(Succeed())
	g.Expect(m1.Client.Delete(ctx, binding)).To(Succeed())

	before := pullSecretErrors(t)
	g.Expect(f.hub.Client.Create(ctx, s)).To(Succeed())
	f.waitState("teamx", clusters.Connected)
	g.Expect(testenv.WaitFor(ctx, wait, func(context.Context) (bool, error) {
		return pullSecretErrors(t) >= before+2, nil
	})).To(Succeed(), "the delivery was not attempted, failed and retried while the Role was not bound")
	var got corev1.Secret
	g.Expect(m1.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: v1alpha1.PullSecretName}, &got)).To(Succeed())
	g.Expect(string(got.Data[corev1.DockerConfigJsonKey])).To(Equal(`{"auths":{}}`), "delivered without the Role")

	// Grant it again, as re-running `hub register` would; nothing else changes.
	g.Expect(enroll.Apply(ctx, m1.Client, ns)).To(Succeed())
	waitPullSecret(t, m1, ns, payload)
	err = m1.Client.Get(ctx, client.ObjectKey{Namespace: v1alpha1.DefaultNamespace, Name: v1alpha1.PullSecretName}, &corev1.Secret{})
	g.Expect(client.IgnoreNotFound(err)).To(Succeed())
	g.Expect(err).To(HaveOccurred(), "nothing is written to image-cloner-system for a member registered in %s", ns)
}

// TestPullSecret_rotatedCredentialReachesEveryMember: one member registered by `hub register`
// (least privilege, the Secret exists empty), one by a Cluster API Secret (admin kubeconfig, no
// Secret yet: the hub creates it); rotating the hub's pull Secret reaches both.
func TestPullSecret_rotatedCredentialReachesEveryMember(t *testing.T) {
	g := NewWithT(t)
	f := startFleet(t, fleetOptions{isolated: true, members: 2})
	ctx := t.Context()
	m1, m2 := f.members[0], f.members[1]
	f.setPullSecret(`{"auths":{"backup.example":{"auth":"b25lOm9uZQ=="}}}`)
	_, err := enroll.Register(ctx, enroll.Options{Member: m1.Config, Name: "least", Hub: f.hub.Client, HubNamespace: f.ns})
	g.Expect(err).NotTo(HaveOccurred())
	ensureNamespace(t, m2, v1alpha1.DefaultNamespace)
	f.register(m2, registration.ClusterAPI)
	f.waitState("least", clusters.Connected)
	f.waitState(m2.Name, clusters.Connected)
	waitPullSecret(t, m1, v1alpha1.DefaultNamespace, `{"auths":{"backup.example":{"auth":"b25lOm9uZQ=="}}}`)
	waitPullSecret(t, m2, v1alpha1.DefaultNamespace, `{"auths":{"backup.example":{"auth":"b25lOm9uZQ=="}}}`)

	const rotated = `{"auths":{"backup.example":{"auth":"dHdvOnR3bw=="}}}`
	f.setPullSecret(rotated)
	waitPullSecret(t, m1, v1alpha1.DefaultNamespace, rotated)
	waitPullSecret(t, m2, v1alpha1.DefaultNamespace, rotated)
}
