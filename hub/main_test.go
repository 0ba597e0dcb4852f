package main

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/internal/testenv"
)

// TestRegisterCommand_writesAClusterAPIRegistrationSecret runs `hub register` with kubeconfig
// files, as a person would, and checks the Secret it wrote in the hub cluster works.
func TestRegisterCommand_writesAClusterAPIRegistrationSecret(t *testing.T) {
	g := NewWithT(t)
	cs := testenv.StartClusters(t, testenv.ClusterOptions{CRDs: true}, "hub", "member")
	hub, member := cs[0], cs[1]
	ctx := t.Context()
	g.Expect(hub.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fleet"}})).To(Succeed())

	g.Expect(runRegister([]string{"--name", "edge"})).To(MatchError(ContainSubstring("--kubeconfig and --name are required")))
	g.Expect(runRegister([]string{
		"--kubeconfig", member.KubeconfigPath, "--name", "edge",
		"--hub-kubeconfig", hub.KubeconfigPath, "--namespace", "fleet", "--cluster-api",
	})).To(Succeed())

	var s corev1.Secret
	g.Expect(hub.Client.Get(ctx, client.ObjectKey{Namespace: "fleet", Name: "edge-kubeconfig"}, &s)).To(Succeed())
	g.Expect(s.Type).To(Equal(registration.CAPISecretType))
	reg, err := registration.Parse(&s)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reg.Cluster).To(Equal("edge"))
	g.Expect(reg.Convention).To(Equal(registration.ClusterAPI))
	c, err := client.New(reg.Config, client.Options{Scheme: testenv.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.List(ctx, &appsv1.DeploymentList{})).To(Succeed())

	// Running it again rotates the token in place.
	before := string(s.Data["value"])
	g.Expect(runRegister([]string{
		"--kubeconfig", member.KubeconfigPath, "--name", "edge",
		"--hub-kubeconfig", hub.KubeconfigPath, "--namespace", "fleet", "--cluster-api",
	})).To(Succeed())
	g.Expect(hub.Client.Get(ctx, client.ObjectKeyFromObject(&s), &s)).To(Succeed())
	g.Expect(string(s.Data["value"])).NotTo(Equal(before))
}
