package clusters

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// Measuring what a cached Pod costs, as bench/fleet's BenchmarkCachedDeployment measures a
// Deployment: the live heap a store holds per object, after a GC, divided by the objects.
//
//	go test -run '^$' -bench 'CachedPod' -benchtime 20000x ./hub/internal/clusters/
//	go test -run '^$' -bench 'InformerPods' -benchtime 1x ./hub/internal/clusters/
//
// The Pod is real: created on a kube-apiserver (envtest) as a Deployment's Pod with what
// admission adds (the service account token volume), then given the status a kubelet writes,
// as the kubelet (field manager "kubelet"), so its managed fields are the API server's own.
//
// Measured on 2026-12-08 (2 shared cores; the Pod's JSON is 9,583 bytes; BenchmarkInformerPods
// as the slope over a cache of no Pods, see informerHeap):
//
//	                          managed fields stripped   ProjectPod (*Pod)   ProjectPod as a typed corev1.Pod (2026-12-07)
//	BenchmarkCachedPod        14,452 B/Pod              892 B/Pod           4,788 B/Pod
//	BenchmarkInformerPods     14,494 B/Pod              992 B/Pod           5,561 B/Pod   (1,000 Pods, real cache)
//
// What is left of a projected Pod: the struct (Meta is 96 bytes of it), the owner's name and
// UID, the Pod's name, UID and resourceVersion, three container statuses, and the store's key
// and indexes; images, image IDs, container names and the template hash are interned, the
// owner's API version, kind and flags shared constants.

// fleetPod creates a Deployment's Pod with two containers (an app and an injected sidecar) and
// an init container on c, gives it a running status, and returns it as the API server has it.
func fleetPod(ctx context.Context, c client.Client, ns, name string) (*corev1.Pod, error) {
	res := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
	mounts := []corev1.VolumeMount{{Name: "kube-api-access-x7k2p", ReadOnly: true, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}}
	container := func(name, image string, port int32) corev1.Container {
		return corev1.Container{
			Name: name, Image: image, Resources: res, VolumeMounts: mounts,
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: port, Protocol: corev1.ProtocolTCP}},
			Env:   []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(port)}},
				PeriodSeconds: 10},
		}
	}
	hash := "5d8f9c7b4"
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name,
			Labels:      map[string]string{"app": "app-017", "pod-template-hash": hash, "app.kubernetes.io/part-of": "fleet"},
			Annotations: map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-12-01T10:00:00Z", "sidecar.istio.io/status": `{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["istio-envoy"]}`},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "app-017-" + hash,
				UID: "6c1f2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b", Controller: ptr(true), BlockOwnerDeletion: ptr(true)}},
		},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "istio-init", Image: "docker.io/istio/proxyv2:1.24.1", Args: []string{"istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337"}, Resources: res}},
			Containers:     []corev1.Container{container("app", "127.0.0.1:5001/backup/fleet_app-017:1.17", 8080), container("istio-proxy", "docker.io/istio/proxyv2:1.24.1", 15090)},
			Volumes: []corev1.Volume{{Name: "kube-api-access-x7k2p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: ptr[int64](3607), Path: "token"}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
			}, DefaultMode: ptr[int32](420)}}}},
			ServiceAccountName: "default", DeprecatedServiceAccount: "default",
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "image-cloner-pull"}},
			NodeName:         "member-worker-3",
			Tolerations: []corev1.Toleration{
				{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr[int64](300)},
				{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr[int64](300)},
			},
		},
	}
	if err := c.Create(ctx, p); err != nil {
		return nil, fmt.Errorf("creating Pod %s: %w", name, err)
	}
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	cond := func(t corev1.PodConditionType) corev1.PodCondition {
		return corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now}
	}
	status := func(name, image, id string) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: name, Image: image, ImageID: id, Ready: true, Started: ptr(true),
			ContainerID: "containerd://" + strings.Repeat("3f", 32), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
			VolumeMounts: []corev1.VolumeMountStatus{{Name: "kube-api-access-x7k2p", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}}}
	}
	proxyID := "docker.io/istio/proxyv2@sha256:" + strings.Repeat("a1", 32)
	p.Status = corev1.PodStatus{
		Phase:      corev1.PodRunning,
		Conditions: []corev1.PodCondition{cond("PodReadyToStartContainers"), cond(corev1.PodInitialized), cond(corev1.PodReady), cond(corev1.ContainersReady), cond(corev1.PodScheduled)},
		HostIP:     "172.18.0.4", HostIPs: []corev1.HostIP{{IP: "172.18.0.4"}},
		PodIP: "10.244.3.17", PodIPs: []corev1.PodIP{{IP: "10.244.3.17"}},
		StartTime: &now, QOSClass: corev1.PodQOSBurstable,
		InitContainerStatuses: []corev1.ContainerStatus{{Name: "istio-init", Image: "docker.io/istio/proxyv2:1.24.1", ImageID: proxyID, Ready: true,
			ContainerID: "containerd://" + strings.Repeat("4e", 32), State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				Reason: "Completed", StartedAt: now, FinishedAt: now, ContainerID: "containerd://" + strings.Repeat("4e", 32)}}}},
		ContainerStatuses: []corev1.ContainerStatus{
			status("app", "127.0.0.1:5001/backup/fleet_app-017:1.17", "127.0.0.1:5001/backup/fleet_app-017@sha256:"+strings.Repeat("b2", 32)),
			status("istio-proxy", "docker.io/istio/proxyv2:1.24.1", proxyID),
		},
	}
	if err := c.Status().Update(ctx, p, client.FieldOwner("kubelet")); err != nil {
		return nil, fmt.Errorf("writing the status of Pod %s: %w", name, err)
	}
	out := &corev1.Pod{}
	return out, c.Get(ctx, client.ObjectKeyFromObject(p), out)
}

// podIndexers are the indexes a member cache keeps on Pods: by namespace, and the hub's index
// by image as AddIndex stores it (every value once).
func podIndexers() toolscache.Indexers {
	return toolscache.Indexers{
		toolscache.NamespaceIndex: toolscache.MetaNamespaceIndexFunc,
		"image-cloner.io/images": func(obj any) ([]string, error) {
			return podImages(obj.(client.Object)), nil
		},
	}
}

// podImages are the images of a typed Pod or of a cached one.
func podImages(obj client.Object) []string {
	if p, ok := obj.(*Pod); ok {
		return p.Images()
	}
	return workload.Images(obj)
}

// BenchmarkCachedPod measures what one fleet Pod costs in a client-go store like the hub's
// member caches: decoded from the API server's JSON, with managed fields stripped (what every
// other kind gets, the cost before ProjectPod), then as ProjectPod keeps it, both indexed.
func BenchmarkCachedPod(b *testing.B) {
	cl := testenv.StartCluster(b, testenv.ClusterOptions{Name: "podsize"})
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fleet-3"}}
	if err := cl.Client.Create(b.Context(), ns); err != nil {
		b.Fatal(err)
	}
	pod, err := fleetPod(b.Context(), cl.Client, ns.Name, "app-017-5d8f9c7b4-x2v7q")
	if err != nil {
		b.Fatal(err)
	}
	pod.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
	data, err := json.Marshal(pod)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		transform toolscache.TransformFunc
	}{{"managed-fields-stripped", cache.TransformStripManagedFields()}, {"projected", ProjectPod}} {
		b.Run(tc.name, func(b *testing.B) {
			testenv.StoreHeap(b, data, func() client.Object { return &corev1.Pod{} }, podIndexers(), func(obj client.Object, i int) (any, error) {
				obj.SetName(fmt.Sprintf("app-017-5d8f9c7b4-%06d", i))
				return tc.transform(obj)
			})
		})
	}
}

// BenchmarkInformerPods measures the same on real informers: a controller-runtime cache, as a
// member connection builds it (conn.serve), lists and watches podCount Pods from a
// kube-apiserver, with and without ProjectPod, indexed by image; the figure is the live heap
// the synced cache holds per Pod, less what a cache of no Pods holds (informerHeap). Run it
// with -benchtime 1x: each iteration builds and syncs two caches.
func BenchmarkInformerPods(b *testing.B) {
	const podCount = 1000
	cl := testenv.StartCluster(b, testenv.ClusterOptions{Name: "informer-pods"})
	for _, name := range []string{"fleet-3", "empty"} {
		if err := cl.Client.Create(b.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range podCount {
		if _, err := fleetPod(b.Context(), cl.Client, "fleet-3", fmt.Sprintf("app-017-5d8f9c7b4-%05d", i)); err != nil {
			b.Fatal(err)
		}
	}
	informerCases(b, cl.Config, &corev1.Pod{}, ProjectPod, podCount, podImages, "live-B/pod")
}
