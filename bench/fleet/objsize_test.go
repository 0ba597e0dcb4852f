package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/e2e/env"
	"github.com/image-cloner/image-cloner/internal/backups"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// BenchmarkCachedDeployment measures what one fleet Deployment costs in a client-go store like
// the hub's member caches: decoded from the API server's JSON (every string its own
// allocation), patched by the agent (backup images, the original-images annotation, a pull
// secret), with the fields the API server defaults, managed fields stripped, indexed by
// namespace and by image; and, for comparison, trimmed to what the hub reads. It explains the
// fleet benchmark's bytes per cached workload:
//
//	go test -run '^$' -bench CachedDeployment -benchtime 20000x ./bench/fleet/
func BenchmarkCachedDeployment(b *testing.B) {
	for _, tc := range []struct {
		name             string
		indexed, trimmed bool
	}{{"as-cached", false, false}, {"as-cached+indexes", true, false}, {"images-only+indexes", true, true}} {
		indexed := tc.indexed
		b.Run(tc.name, func(b *testing.B) {
			data := fleetDeploymentJSON(b)
			indexers := toolscache.Indexers{}
			if indexed {
				indexers[toolscache.NamespaceIndex] = toolscache.MetaNamespaceIndexFunc
				// As controller-runtime's IndexField stores the hub's image index: every value
				// twice, namespaced and under __all_namespaces.
				indexers["field:image-cloner.io/images"] = func(obj any) ([]string, error) {
					d := obj.(*appsv1.Deployment)
					var out []string
					for _, c := range d.Spec.Template.Spec.Containers {
						out = append(out, d.Namespace+"/"+c.Image, "__all_namespaces/"+c.Image)
					}
					return out, nil
				}
			}
			testenv.StoreHeap(b, data, func() client.Object { return &appsv1.Deployment{} }, indexers, func(obj client.Object, i int) (any, error) {
				d := obj.(*appsv1.Deployment)
				d.Name = fmt.Sprintf("w1-%05d", i)
				d.ManagedFields = nil
				if tc.trimmed {
					d = imagesOnly(d)
				}
				return d, nil
			})
		})
	}
}

// imagesOnly is what a cache transform could keep of a Deployment for the hub, which reads
// only names, the original-images annotation and the images: the rest of the pod template is
// what makes a cached workload cost kilobytes.
func imagesOnly(d *appsv1.Deployment) *appsv1.Deployment {
	out := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{
		Name: d.Name, Namespace: d.Namespace, UID: d.UID, ResourceVersion: d.ResourceVersion,
		Generation: d.Generation, Labels: d.Labels, Annotations: d.Annotations,
	}}
	for _, c := range d.Spec.Template.Spec.Containers {
		out.Spec.Template.Spec.Containers = append(out.Spec.Template.Spec.Containers, corev1.Container{Name: c.Name, Image: c.Image})
	}
	return out
}

// fleetDeploymentJSON is a fleet Deployment with two images as the API server returns it once
// the agent has patched it.
func fleetDeploymentJSON(b *testing.B) []byte {
	backup := "127.0.0.1:5001/backup"
	d := env.Deployment("fleet-3", "w1-00042", "127.0.0.1:5000/fleet/app-001:1.1", "127.0.0.1:5000/fleet/app-017:1.17")
	d.Labels = map[string]string{fleetLabel: "true"}
	d.TypeMeta = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}
	d.UID, d.ResourceVersion, d.Generation = "9a1f1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b", "123456", 2
	d.CreationTimestamp = metav1.Now()
	// What the API server defaults.
	d.Spec.Replicas, d.Spec.RevisionHistoryLimit, d.Spec.ProgressDeadlineSeconds = ptr.To[int32](1), ptr.To[int32](10), ptr.To[int32](600)
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType}
	ps := &d.Spec.Template.Spec
	ps.RestartPolicy, ps.DNSPolicy, ps.SchedulerName = corev1.RestartPolicyAlways, corev1.DNSClusterFirst, corev1.DefaultSchedulerName
	ps.TerminationGracePeriodSeconds, ps.SecurityContext = ptr.To[int64](30), &corev1.PodSecurityContext{}
	for i := range ps.Containers {
		c := &ps.Containers[i]
		c.TerminationMessagePath, c.TerminationMessagePolicy, c.ImagePullPolicy = "/dev/termination-log", corev1.TerminationMessageReadFile, corev1.PullIfNotPresent
	}
	if _, err := workload.Rewrite(d, func(image string) (string, bool) {
		return backup + "/" + strings.NewReplacer("/", "_").Replace(strings.TrimPrefix(image, "127.0.0.1:5000/")), true
	}); err != nil {
		b.Fatal(err)
	}
	if _, err := backups.AddPullSecret(d); err != nil {
		b.Fatal(err)
	}
	data, err := json.Marshal(d)
	if err != nil {
		b.Fatal(err)
	}
	return data
}
