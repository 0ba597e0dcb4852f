package pullsecrets_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/image-cloner/image-cloner/agent/internal/agenttest"
	"github.com/image-cloner/image-cloner/agent/internal/pullsecrets"
	"github.com/image-cloner/image-cloner/internal/backups"
	"github.com/image-cloner/image-cloner/internal/testenv"
	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

const agentNS = apiv1.DefaultNamespace

// TestPullSecrets runs the pull secret reconciler as the agent does, with its restricted cache,
// against one real control plane.
func TestPullSecrets(t *testing.T) {
	g := NewWithT(t)
	ctrl.SetLogger(logr.Discard())
	cluster := testenv.StartCluster(t, testenv.ClusterOptions{CRDs: true})
	c := cluster.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	g.Expect(agenttest.EnsureNamespace(ctx, c, agentNS)).To(Succeed())
	// Namespaces that exist before the agent starts, and one that is ignored.
	before, err := agenttest.Namespace(ctx, c, nil)
	g.Expect(err).NotTo(HaveOccurred())
	ignored, err := agenttest.Namespace(ctx, c, nil)
	g.Expect(err).NotTo(HaveOccurred())

	// The source, with an extra key that must not be copied, and, beside it, push
	// credentials and another Secret that must never be copied nor cached.
	pullV1 := []byte(`{"auths":{"backup.example.com":{"auth":"cHVsbDp2MQ=="}}}`)
	src := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: agentNS, Name: apiv1.PullSecretName},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: pullV1, "note": []byte("not a credential")},
	}
	g.Expect(c.Create(ctx, src)).To(Succeed())
	push := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: agentNS, Name: "image-cloner-push-credentials"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"backup.example.com":{"auth":"cHVzaDpzZWNyZXQ="}}}`)},
	}
	g.Expect(c.Create(ctx, push)).To(Succeed())
	other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: before, Name: "app-secret"}, StringData: map[string]string{"k": "v"}}
	g.Expect(c.Create(ctx, other)).To(Succeed())

	mgr, err := ctrl.NewManager(cluster.Config, ctrl.Options{
		Scheme:  testenv.Scheme(),
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   cache.Options{ByObject: pullsecrets.CacheByObject(agentNS)},
	})
	g.Expect(err).NotTo(HaveOccurred())
	s := backups.Defaults(agentNS)
	s.IgnoredNamespaces = append(s.IgnoredNamespaces, ignored)
	r := &pullsecrets.Reconciler{Client: mgr.GetClient(), Namespace: agentNS, Policy: backups.Static(s)}
	g.Expect(r.SetupWithManager(mgr)).To(Succeed())
	go func() { _ = mgr.Start(ctx) }()
	g.Expect(mgr.GetCache().WaitForCacheSync(ctx)).To(BeTrue())

	copyIn := func(ns string) (*corev1.Secret, error) {
		s := &corev1.Secret{}
		return s, c.Get(ctx, client.ObjectKey{Namespace: ns, Name: apiv1.NamespacePullSecretName}, s)
	}
	// waitCopy waits until ns holds a copy whose payload is want (nil: no copy).
	waitCopy := func(ns string, want []byte) error {
		return testenv.WaitFor(ctx, 30*time.Second, func(context.Context) (bool, error) {
			s, err := copyIn(ns)
			if apierrors.IsNotFound(err) {
				return want == nil, nil
			}
			if err != nil {
				return false, err
			}
			return want != nil && string(s.Data[corev1.DockerConfigJsonKey]) == string(want), nil
		})
	}
	expectOnlyPull := func(g Gomega, ns string, want []byte) {
		s, err := copyIn(ns)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(s.Type).To(Equal(corev1.SecretTypeDockerConfigJson))
		g.Expect(s.Labels).To(HaveKeyWithValue(apiv1.ManagedByLabel, apiv1.ManagedByValue))
		g.Expect(s.Data).To(Equal(map[string][]byte{corev1.DockerConfigJsonKey: want}))
	}

	t.Run("copiesIntoExistingAndNewNamespaces", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(waitCopy(before, pullV1)).To(Succeed())
		expectOnlyPull(g, before, pullV1)

		start := time.Now()
		fresh, err := agenttest.Namespace(ctx, c, nil)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(waitCopy(fresh, pullV1)).To(Succeed())
		testenv.Report(t, "pull secret present in a new namespace after %s", time.Since(start).Round(time.Millisecond))
		expectOnlyPull(g, fresh, pullV1)
	})

	t.Run("leavesIgnoredAndOwnNamespacesWithoutCopy", func(t *testing.T) {
		g := NewWithT(t)
		for _, ns := range []string{ignored, agentNS, "kube-system"} {
			_, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKey{Name: ns}})
			g.Expect(err).NotTo(HaveOccurred())
			_, err = copyIn(ns)
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "namespace %s: %v", ns, err)
		}
	})

	t.Run("neverCachesOtherSecrets", func(t *testing.T) {
		g := NewWithT(t)
		var cached corev1.SecretList
		g.Expect(mgr.GetCache().List(ctx, &cached)).To(Succeed())
		for _, s := range cached.Items {
			ok := (s.Namespace == agentNS && s.Name == apiv1.PullSecretName) ||
				(s.Name == apiv1.NamespacePullSecretName && s.Labels[apiv1.ManagedByLabel] == apiv1.ManagedByValue)
			g.Expect(ok).To(BeTrue(), "cached Secret %s/%s", s.Namespace, s.Name)
			g.Expect(string(s.Data[corev1.DockerConfigJsonKey])).NotTo(ContainSubstring("cHVzaDpzZWNyZXQ="))
		}
		g.Expect(len(cached.Items)).To(BeNumerically(">=", 2))
	})

	t.Run("followsRotationAndUndoesTampering", func(t *testing.T) {
		g := NewWithT(t)
		pullV2 := []byte(`{"auths":{"backup.example.com":{"auth":"cHVsbDp2Mg=="}}}`)
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(src), src)).To(Succeed())
		src.Data[corev1.DockerConfigJsonKey] = pullV2
		g.Expect(c.Update(ctx, src)).To(Succeed())
		g.Expect(waitCopy(before, pullV2)).To(Succeed())
		expectOnlyPull(g, before, pullV2)

		cp, err := copyIn(before)
		g.Expect(err).NotTo(HaveOccurred())
		cp.Data["extra"] = []byte("x")
		g.Expect(c.Update(ctx, cp)).To(Succeed())
		g.Expect(testenv.WaitFor(ctx, 30*time.Second, func(context.Context) (bool, error) {
			s, err := copyIn(before)
			return err == nil && len(s.Data) == 1, err
		})).To(Succeed())
		expectOnlyPull(g, before, pullV2)
	})

	t.Run("deletesCopiesWithTheSource", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(c.Delete(ctx, src)).To(Succeed())
		g.Expect(waitCopy(before, nil)).To(Succeed())
		var all corev1.SecretList
		g.Expect(c.List(ctx, &all, client.MatchingLabels{apiv1.ManagedByLabel: apiv1.ManagedByValue})).To(Succeed())
		g.Expect(testenv.WaitFor(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
			err := c.List(ctx, &all, client.MatchingLabels{apiv1.ManagedByLabel: apiv1.ManagedByValue})
			return err == nil && len(all.Items) == 0, err
		})).To(Succeed())
	})
}
