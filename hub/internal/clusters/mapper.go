package clusters

import (
	"net/http"
	"slices"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// hubKinds maps the kinds the hub reads and writes in a member to their resources, the same in
// every Kubernetes cluster (and ClonedImage, which checkAccess checks is installed). One
// instance serves every registration.
//
// controller-runtime's default mapper discovers every API group of each member the first time
// it maps a kind, and keeps all of them: about 280 KiB of heap per registration, most of what a
// registration cost (BenchmarkRegistrationHeap), for the dozen kinds the hub uses.
var hubKinds = func() meta.RESTMapper {
	namespaced := []schema.GroupVersionKind{
		appsv1.SchemeGroupVersion.WithKind("Deployment"),
		appsv1.SchemeGroupVersion.WithKind("DaemonSet"),
		appsv1.SchemeGroupVersion.WithKind("StatefulSet"),
		appsv1.SchemeGroupVersion.WithKind("ReplicaSet"),
		batchv1.SchemeGroupVersion.WithKind("Job"),
		batchv1.SchemeGroupVersion.WithKind("CronJob"),
		corev1.SchemeGroupVersion.WithKind("Pod"),
		corev1.SchemeGroupVersion.WithKind("Secret"),
		corev1.SchemeGroupVersion.WithKind("ConfigMap"),
		corev1.SchemeGroupVersion.WithKind("ServiceAccount"),
		corev1.SchemeGroupVersion.WithKind("Event"),
		eventsv1.SchemeGroupVersion.WithKind("Event"),
		rbacv1.SchemeGroupVersion.WithKind("Role"),
		rbacv1.SchemeGroupVersion.WithKind("RoleBinding"),
	}
	cluster := []schema.GroupVersionKind{
		corev1.SchemeGroupVersion.WithKind("Namespace"),
		v1alpha1.GroupVersion.WithKind("ClonedImage"),
	}
	// The group versions, so that a kind asked for without a version maps too.
	var gvs []schema.GroupVersion
	for _, gvk := range append(namespaced, cluster...) {
		if !slices.Contains(gvs, gvk.GroupVersion()) {
			gvs = append(gvs, gvk.GroupVersion())
		}
	}
	m := meta.NewDefaultRESTMapper(gvs)
	for _, gvk := range namespaced {
		m.Add(gvk, meta.RESTScopeNamespace)
	}
	for _, gvk := range cluster {
		m.Add(gvk, meta.RESTScopeRoot)
	}
	return m
}()

// newMapper is the member clusters' MapperProvider: hubKinds, and for any other kind
// controller-runtime's discovering mapper, built only when one is first asked for.
func newMapper(cfg *rest.Config, hc *http.Client) (meta.RESTMapper, error) {
	return &fallbackMapper{static: hubKinds, dynamic: func() (meta.RESTMapper, error) { return apiutil.NewDynamicRESTMapper(cfg, hc) }}, nil
}

// fallbackMapper answers from static, and from dynamic what static does not know.
type fallbackMapper struct {
	static  meta.RESTMapper
	dynamic func() (meta.RESTMapper, error)

	once sync.Once
	dyn  meta.RESTMapper
	err  error
}

func (f *fallbackMapper) fallback() (meta.RESTMapper, error) {
	f.once.Do(func() { f.dyn, f.err = f.dynamic() })
	return f.dyn, f.err
}

// first returns static's answer unless it knows nothing of the kind or resource.
func first[T any](f *fallbackMapper, ask func(meta.RESTMapper) (T, error)) (T, error) {
	v, err := ask(f.static)
	if err == nil || !meta.IsNoMatchError(err) {
		return v, err
	}
	dyn, derr := f.fallback()
	if derr != nil {
		return v, derr
	}
	return ask(dyn)
}

func (f *fallbackMapper) KindFor(r schema.GroupVersionResource) (schema.GroupVersionKind, error) {
	return first(f, func(m meta.RESTMapper) (schema.GroupVersionKind, error) { return m.KindFor(r) })
}

func (f *fallbackMapper) KindsFor(r schema.GroupVersionResource) ([]schema.GroupVersionKind, error) {
	return first(f, func(m meta.RESTMapper) ([]schema.GroupVersionKind, error) { return m.KindsFor(r) })
}

func (f *fallbackMapper) ResourceFor(r schema.GroupVersionResource) (schema.GroupVersionResource, error) {
	return first(f, func(m meta.RESTMapper) (schema.GroupVersionResource, error) { return m.ResourceFor(r) })
}

func (f *fallbackMapper) ResourcesFor(r schema.GroupVersionResource) ([]schema.GroupVersionResource, error) {
	return first(f, func(m meta.RESTMapper) ([]schema.GroupVersionResource, error) { return m.ResourcesFor(r) })
}

func (f *fallbackMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	return first(f, func(m meta.RESTMapper) (*meta.RESTMapping, error) { return m.RESTMapping(gk, versions...) })
}

func (f *fallbackMapper) RESTMappings(gk schema.GroupKind, versions ...string) ([]*meta.RESTMapping, error) {
	return first(f, func(m meta.RESTMapper) ([]*meta.RESTMapping, error) { return m.RESTMappings(gk, versions...) })
}

func (f *fallbackMapper) ResourceSingularizer(resource string) (string, error) {
	return first(f, func(m meta.RESTMapper) (string, error) { return m.ResourceSingularizer(resource) })
}
