package app_test

import (
	"context"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// sharedMembers is how many members the package's fleet has: the most any test registers.
const sharedMembers = 2

// suite is the package's fleet, as cluster-api's suite_test.go keeps one envtest per package:
// a hub cluster, members and both registries, started by the first test that needs them and
// stopped by TestMain. Each test that uses it runs its own hub in a namespace of its own, and
// sweep removes what the test left in the clusters, so that the next test's hub finds only
// its own objects. Tests that stop a cluster or a registry, garbage-collect the backup
// registry or change a member's RBAC start their own (fleetOptions.isolated).
type suite struct {
	once     sync.Once
	stop     func()
	hub      *testenv.Cluster
	members  []*testenv.Cluster
	upstream *testenv.Registry
	backup   *testenv.Registry
}

var shared suite

// sharedFleet returns the package's fleet, starting it on first use.
func sharedFleet(t *testing.T) *suite {
	t.Helper()
	shared.once.Do(func() {
		st, stop := testenv.Standalone("hub-app-suite")
		shared.stop = stop
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			shared.upstream = testenv.StartRegistry(st, testenv.RegistryOptions{Name: "upstream"})
		}()
		go func() {
			defer wg.Done()
			shared.backup = testenv.StartRegistry(st, testenv.RegistryOptions{Name: "backup", Auth: true})
		}()
		cs := testenv.StartClusters(st, testenv.ClusterOptions{CRDs: true}, clusterNames(sharedMembers)...)
		wg.Wait()
		shared.hub, shared.members = cs[0], cs[1:]
	})
	if shared.hub == nil {
		t.Fatal("the package's fleet did not start")
	}
	return &shared
}

// stopSuite stops the package's fleet, if a test started it.
func stopSuite() {
	if shared.stop != nil {
		shared.stop()
	}
}

// sweep deletes, in every cluster of the suite, what a test's hub and the test itself leave
// behind: ClonedImages, workloads and the pull Secrets the hub delivers. It runs after the
// test's hub has stopped, with a context of its own (the test's is cancelled by then).
func (s *suite) sweep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for _, c := range append([]*testenv.Cluster{s.hub}, s.members...) {
		if err := c.Client.DeleteAllOf(ctx, &v1alpha1.ClonedImage{}); err != nil {
			t.Errorf("sweeping ClonedImages in %s: %v", c.Name, err)
		}
		var nss corev1.NamespaceList
		if err := c.Client.List(ctx, &nss); err != nil {
			t.Errorf("listing namespaces in %s: %v", c.Name, err)
			continue
		}
		for _, ns := range nss.Items {
			for _, kind := range workload.Kinds() {
				if err := c.Client.DeleteAllOf(ctx, kind, client.InNamespace(ns.Name)); err != nil {
					t.Errorf("sweeping %T in %s/%s: %v", kind, c.Name, ns.Name, err)
				}
			}
			err := c.Client.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: v1alpha1.PullSecretName}})
			if client.IgnoreNotFound(err) != nil {
				t.Errorf("sweeping the pull Secret in %s/%s: %v", c.Name, ns.Name, err)
			}
		}
		// Deletions are immediate in an API server without finalizers to run, but the
		// next hub must not list what is still going: wait until the ClonedImages are gone.
		err := testenv.WaitFor(ctx, wait, func(ctx context.Context) (bool, error) {
			var list v1alpha1.ClonedImageList
			err := c.Client.List(ctx, &list)
			return err == nil && len(list.Items) == 0, err
		})
		if err != nil {
			t.Errorf("ClonedImages left in %s: %v", c.Name, err)
		}
	}
}
