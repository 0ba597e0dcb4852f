package env

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// SampleNamespace holds the sample workloads in every member.
const SampleNamespace = "demo"

// SeedImage pushes a random single-platform image (2 layers of 4 KiB) to the upstream registry
// under repoTag (e.g. "library/nginx:1.25") and returns its reference.
func (e *Env) SeedImage(repoTag string) (string, error) {
	img, err := random.Image(4096, 2)
	if err != nil {
		return "", err
	}
	return e.push(repoTag, img)
}

// SeedIndex pushes a random multi-arch index (linux/amd64 and linux/arm64) under repoTag.
func (e *Env) SeedIndex(repoTag string) (string, error) {
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(4096, 2)
		if err != nil {
			return "", err
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	return e.push(repoTag, mutate.AppendManifests(empty.Index, adds...))
}

func (e *Env) push(repoTag string, w remote.Taggable) (string, error) {
	ref, err := name.ParseReference(e.Upstream.Host + "/" + repoTag)
	if err != nil {
		return "", err
	}
	opt := remote.WithTransport(e.Upstream.Transport())
	switch x := w.(type) {
	case v1.Image:
		err = remote.Write(ref, x, opt)
	case v1.ImageIndex:
		err = remote.WriteIndex(ref, x, opt)
	}
	if err != nil {
		return "", fmt.Errorf("pushing %s: %w", ref, err)
	}
	return ref.String(), nil
}

// Samples are the demo's images, keyed by short name (nginx, busybox, alpine).
type Samples map[string]string

// SeedSamples pushes upstream library/nginx:1.25, library/busybox:1.36 and the multi-arch
// library/alpine:3.20.
func (e *Env) SeedSamples() (Samples, error) {
	s := Samples{}
	var err error
	if s["nginx"], err = e.SeedImage("library/nginx:1.25"); err != nil {
		return nil, err
	}
	if s["busybox"], err = e.SeedImage("library/busybox:1.36"); err != nil {
		return nil, err
	}
	if s["alpine"], err = e.SeedIndex("library/alpine:3.20"); err != nil {
		return nil, err
	}
	return s, nil
}

// SampleWorkloads returns the demo's workloads for the i-th member: every member runs nginx
// (a Deployment), member-1 also busybox and alpine (a Deployment with an init container and a
// DaemonSet), the others a DaemonSet on busybox; so images are shared across clusters.
func SampleWorkloads(i int, s Samples) []client.Object {
	if i == 0 {
		return []client.Object{
			Deployment(SampleNamespace, "web", s["nginx"]),
			Deployment(SampleNamespace, "tools", s["busybox"], s["alpine"]),
			DaemonSet(SampleNamespace, "log-agent", s["alpine"]),
		}
	}
	return []client.Object{
		Deployment(SampleNamespace, "web", s["nginx"]),
		DaemonSet(SampleNamespace, "node-exporter", s["busybox"]),
	}
}

// CreateSamples creates SampleNamespace and SampleWorkloads in every member.
func (e *Env) CreateSamples(ctx context.Context, s Samples) error {
	for i, m := range e.Members {
		if err := EnsureNamespace(ctx, m.Client, SampleNamespace); err != nil {
			return err
		}
		for _, obj := range SampleWorkloads(i, s) {
			if err := m.Client.Create(ctx, obj); err != nil {
				return fmt.Errorf("creating %s/%s in %s: %w", obj.GetNamespace(), obj.GetName(), m.Name, err)
			}
		}
	}
	return nil
}

// EnsureNamespace creates a namespace unless it exists.
func EnsureNamespace(ctx context.Context, c client.Client, ns string) error {
	err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	return nil
}

func podSpec(images []string) corev1.PodTemplateSpec {
	var cs []corev1.Container
	for i, img := range images {
		base := img[strings.LastIndex(img, "/")+1:]
		cs = append(cs, corev1.Container{Name: fmt.Sprintf("c%d-%s", i, strings.NewReplacer(":", "-", ".", "-").Replace(base)), Image: img})
	}
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "sample"}}, Spec: corev1.PodSpec{Containers: cs}}
}

// Deployment returns a Deployment running one container per image.
func Deployment(ns, name string, images ...string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "sample"}},
			Template: podSpec(images),
		},
	}
}

// DaemonSet returns a DaemonSet running one container per image.
func DaemonSet(ns, name string, images ...string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "sample"}},
			Template: podSpec(images),
		},
	}
}
