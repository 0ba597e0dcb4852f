package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

const poll = 200 * time.Millisecond

// pushImage pushes a random image to the upstream registry under e2e/<repo>-<random>:v1, so
// no spec sees another's image, and returns its reference and digest.
func pushImage(t testing.TB, in FleetInput, repo string) (string, v1.Hash) {
	t.Helper()
	g := gomega.NewWithT(t)
	img, err := random.Image(2048, 2)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	ref, err := name.ParseReference(fmt.Sprintf("%s/e2e/%s-%s:v1", in.Upstream.Host, repo, randomSuffix()))
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(remote.Write(ref, img, in.Upstream.remoteOptions()...)).To(gomega.Succeed())
	d, err := img.Digest()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	return ref.String(), d
}

func (r RegistryInfo) remoteOptions() []remote.Option {
	var opts []remote.Option
	if r.Transport != nil {
		opts = append(opts, remote.WithTransport(r.Transport))
	}
	if r.Auth != nil {
		opts = append(opts, remote.WithAuth(r.Auth))
	}
	return opts
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newNamespace creates a namespace with a generated name in k.
func newNamespace(ctx context.Context, t testing.TB, k *Kube) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}}
	gomega.NewWithT(t).Expect(k.Client.Create(ctx, ns)).To(gomega.Succeed(), "creating a namespace in %s", k.Name)
	return ns.Name
}

func podTemplate(images ...string) corev1.PodTemplateSpec {
	var cs []corev1.Container
	for i, img := range images {
		cs = append(cs, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: img})
	}
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "e2e"}}, Spec: corev1.PodSpec{Containers: cs}}
}

func deployment(ns, name string, images ...string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "e2e"}},
			Template: podTemplate(images...),
		},
	}
}

func daemonSet(ns, name string, images ...string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "e2e"}},
			Template: podTemplate(images...),
		},
	}
}

// clonedImage returns k's ClonedImage for source, or nil.
func clonedImage(ctx context.Context, k *Kube, source string) (*v1alpha1.ClonedImage, error) {
	var list v1alpha1.ClonedImageList
	if err := k.Client.List(ctx, &list); err != nil {
		return nil, err
	}
	for i := range list.Items {
		if list.Items[i].Spec.Source == source {
			return &list.Items[i], nil
		}
	}
	return nil, nil
}

// waitReady waits until k has a Ready ClonedImage for source and returns it.
func waitReady(ctx context.Context, t testing.TB, in FleetInput, k *Kube, source string) *v1alpha1.ClonedImage {
	t.Helper()
	var ci *v1alpha1.ClonedImage
	gomega.NewWithT(t).Eventually(func(g gomega.Gomega) {
		var err error
		ci, err = clonedImage(ctx, k, source)
		g.Expect(err).NotTo(gomega.HaveOccurred())
		g.Expect(ci).NotTo(gomega.BeNil(), "no ClonedImage for %s in %s", source, k.Name)
		g.Expect(ci.IsReady()).To(gomega.BeTrue(), "ClonedImage %s in %s: %+v", ci.Name, k.Name, ci.Status)
	}).WithTimeout(in.timeout()).WithPolling(poll).Should(gomega.Succeed())
	return ci
}
