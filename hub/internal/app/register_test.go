package app_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/hub/internal/app"
	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/internal/enroll"
	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// TestRegister_mintsALeastPrivilegeKubeconfig registers a member the way `hub register` does and
// checks, with real requests as the minted identity, that it can read workloads and write
// ClonedImages but cannot read Secrets beyond the one pull Secret; then that the hub serves the
// member with it, including handing over the pull-only credentials.
func TestRegister_mintsALeastPrivilegeKubeconfig(t *testing.T) {
	g := NewWithT(t)
	f := startFleet(t, fleetOptions{isolated: true, members: 1})
	ctx := t.Context()
	m1 := f.members[0]

	pull := []byte(`{"auths":{"` + f.backup.Host + `":{"auth":"cHVsbGVyOnB1bGw="}}}`)
	g.Expect(f.hub.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: v1alpha1.PullSecretName},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: pull},
	})).To(Succeed())
	ensureNamespace(t, m1, "default")
	g.Expect(m1.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "private"}})).To(Succeed())

	s, err := enroll.Register(ctx, enroll.Options{Member: m1.Config, Name: "least", Hub: f.hub.Client, HubNamespace: f.ns})
	g.Expect(err).NotTo(HaveOccurred())
	var stored corev1.Secret
	g.Expect(f.hub.Client.Get(ctx, client.ObjectKeyFromObject(s), &stored)).To(Succeed())
	reg, err := registration.Parse(&stored)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reg.Cluster).To(Equal("least"))
	g.Expect(reg.Config.BearerToken).NotTo(BeEmpty())
	g.Expect(reg.Config.CertData).To(BeEmpty(), "no admin client certificate in the minted kubeconfig")

	c, err := client.New(reg.Config, client.Options{Scheme: app.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.List(ctx, &appsv1.DeploymentList{})).To(Succeed())
	g.Expect(c.List(ctx, &appsv1.DaemonSetList{})).To(Succeed())
	g.Expect(c.List(ctx, &v1alpha1.ClonedImageList{})).To(Succeed())
	err = c.List(ctx, &corev1.SecretList{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "listing Secrets cluster-wide: %v", err)
	err = c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "private"}, &corev1.Secret{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "reading another Secret: %v", err)
	err = c.List(ctx, &corev1.ConfigMapList{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "listing ConfigMaps: %v", err)
	g.Expect(c.Get(ctx, client.ObjectKey{Namespace: v1alpha1.DefaultNamespace, Name: v1alpha1.PullSecretName}, &corev1.Secret{})).To(Succeed())

	// The hub serves the member with nothing more.
	f.waitState("least", clusters.Connected)
	image, _ := f.seed("team/least:1")
	g.Expect(m1.Client.Create(ctx, deployment(namespace(t, m1), "web", image))).To(Succeed())
	waitPhase(t, m1, image, v1alpha1.PhaseReady)
	g.Expect(testenv.WaitFor(ctx, wait, func(ctx context.Context) (bool, error) {
		var got corev1.Secret
		err := m1.Client.Get(ctx, client.ObjectKey{Namespace: v1alpha1.DefaultNamespace, Name: v1alpha1.PullSecretName}, &got)
		return err == nil && string(got.Data[corev1.DockerConfigJsonKey]) == string(pull), client.IgnoreNotFound(err)
	})).To(Succeed(), "the member did not get the hub's pull-only credentials")
}
