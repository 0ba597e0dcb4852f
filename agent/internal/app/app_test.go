package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"os"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	webhookadmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/image-cloner/image-cloner/agent/internal/admission"
	"github.com/image-cloner/image-cloner/agent/internal/agenttest"
	"github.com/image-cloner/image-cloner/agent/internal/app"
	"github.com/image-cloner/image-cloner/agent/internal/certs"
	"github.com/image-cloner/image-cloner/internal/backups"
	"github.com/image-cloner/image-cloner/internal/testenv"
	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/imageref"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

const (
	agentNS = apiv1.DefaultNamespace
	// backupRegistry is the BACKUP_REGISTRY of tests whose Pods are never rewritten: nothing
	// answers there. TestAgent runs a real registry instead.
	backupRegistry = "backup.example.com/acme"
	caOverlap      = 2 * time.Second
)

// warnings collects the admission warnings a client receives.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

// TestAgent runs the assembled agent (manager, patcher, pull secrets, webhooks with built-in
// certificates) against a real kube-apiserver that calls its webhooks over TLS, configured
// from deploy/webhooks/webhooks.yaml as shipped except for failurePolicy, set to Fail here so
// that a webhook failure is an error the test sees instead of a silently admitted object.
func TestAgent(t *testing.T) {
	g := NewWithT(t)
	ctrl.SetLogger(funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, prefix, args) }, funcr.Options{}))
	root, err := testenv.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	cluster := testenv.StartCluster(t, testenv.ClusterOptions{
		CRDs:         true,
		WebhookPaths: []string{filepath.Join(root, "deploy", "webhooks", "webhooks.yaml")},
	})
	c := cluster.Client
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The mutating webhook only points Pods at a backup registry that answers: a real one.
	registry := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "backup"})
	backupRegistry := registry.Host + "/acme"

	failClosed(ctx, g, c)
	g.Expect(agenttest.EnsureNamespace(ctx, c, agentNS)).To(Succeed())
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: agentNS, Name: apiv1.ConfigMapName},
		Data: map[string]string{
			"BACKUP_REGISTRY": backupRegistry,
			"WEBHOOK_MODE":    "enforce",
			"PIN_DIGEST":      "false",
		},
	}
	g.Expect(c.Create(ctx, cm)).To(Succeed())
	g.Expect(c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: agentNS, Name: apiv1.PullSecretName},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"` + registry.Host + `":{"auth":"cHVsbDp4"}}}`)},
	})).To(Succeed())

	// The agent runs as a user with exactly the rights deploy/agent/rbac.yaml grants, so
	// the test fails if the manifests lack a permission the agent uses.
	agentCfg := agentUser(ctx, g, cluster, filepath.Join(root, "deploy", "agent", "rbac.yaml"))
	wh := cluster.Env.WebhookInstallOptions
	// A short TTL so that the outage test sees the registry go and come back quickly.
	probe, err := admission.NewRegistryProbe(admission.WithProbeTTL(250 * time.Millisecond))
	g.Expect(err).NotTo(HaveOccurred())
	agent, err := app.New(ctx, app.Options{
		BackupProbe: probe,
		Config:      agentCfg,
		LeaderElect: true,
		Namespace:   agentNS,
		MetricsAddr: "0",
		ProbeAddr:   "0",
		WebhookHost: wh.LocalServingHost,
		WebhookPort: wh.LocalServingPort,
		CertOptions: loopbackCerts(),
		// Its own: TestWebhookTLS runs an agent in this process too.
		MetricsRegistry: prometheus.NewRegistry(),
	})
	g.Expect(err).NotTo(HaveOccurred())
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- agent.Manager.Start(ctx) }()
	select {
	case <-agent.Certs.Ready():
	case <-time.After(time.Minute):
		t.Fatal("no serving certificate after a minute")
	}
	mc := agent.Manager.GetClient()

	// setConfig changes the ConfigMap and waits until the agent's cache has the change.
	setConfig := func(g Gomega, key, value string) {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(cm), cm)).To(Succeed())
		cm.Data[key] = value
		g.Expect(c.Update(ctx, cm)).To(Succeed())
		g.Expect(testenv.WaitFor(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
			got := &corev1.ConfigMap{}
			err := mc.Get(ctx, client.ObjectKeyFromObject(cm), got)
			return err == nil && got.ResourceVersion == cm.ResourceVersion, err
		})).To(Succeed())
	}

	probeNS, err := agenttest.Namespace(ctx, c, nil)
	g.Expect(err).NotTo(HaveOccurred())
	// The webhooks answer once the API server trusts the injected CA and the cache is synced:
	// until then, with failurePolicy Fail, requests fail instead of being denied.
	start := time.Now()
	g.Expect(testenv.WaitFor(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		err := c.Create(ctx, agenttest.Deployment(probeNS, "probe", "probe.example.com/x:1", "probe.example.com/x:1"), client.DryRunAll)
		return err != nil && strings.Contains(err.Error(), "(dry run)"), nil
	})).To(Succeed())
	testenv.Report(t, "agent webhooks answering %s after start", time.Since(start).Round(time.Millisecond))

	ready := func(g Gomega, image string) string {
		ref, err := imageref.Parse(image)
		g.Expect(err).NotTo(HaveOccurred())
		backup := backupRegistry + "/" + strings.NewReplacer("/", "_").Replace(ref.Name()) + ":" + ref.Tag
		_, err = agenttest.ClonedImage(ctx, c, image, apiv1.PhaseReady, backup)
		g.Expect(err).NotTo(HaveOccurred())
		// The webhook reads through the agent's cache.
		g.Expect(testenv.WaitFor(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
			ci := &apiv1.ClonedImage{}
			err := mc.Get(ctx, client.ObjectKey{Name: imageref.ObjectName(ref)}, ci)
			return err == nil && ci.IsReady(), client.IgnoreNotFound(err)
		})).To(Succeed())
		return backup
	}

	t.Run("enforceDeniesNamesTheImageAndRequestsACopy", func(t *testing.T) {
		g := NewWithT(t)
		ns, err := agenttest.Namespace(ctx, c, nil)
		g.Expect(err).NotTo(HaveOccurred())
		const img = "docker.io/acme/unbacked:1"
		ref, _ := imageref.Parse(img)
		name := imageref.ObjectName(ref)

		// A dry run is refused too, but requests nothing (sideEffects NoneOnDryRun).
		err = c.Create(ctx, agenttest.Deployment(ns, "web", img, img), client.DryRunAll)
		g.Expect(err).To(HaveOccurred())
		g.Expect(err.Error()).To(ContainSubstring("(dry run)"))
		g.Expect(apierrors.IsNotFound(c.Get(ctx, client.ObjectKey{Name: name}, &apiv1.ClonedImage{}))).To(BeTrue())

		for _, obj := range []client.Object{
			agenttest.Deployment(ns, "web", "busybox:1.36", img),
			agenttest.Workloads(ns, "busybox:1.36", img)[1], // DaemonSet: the seed's rule and path were wrong
		} {
			err := c.Create(ctx, obj)
			g.Expect(err).To(HaveOccurred(), "%T", obj)
			g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%T: %v", obj, err)
			msg := err.Error()
			g.Expect(msg).To(ContainSubstring(`image "docker.io/acme/unbacked:1" has no backup yet`))
			g.Expect(msg).To(ContainSubstring("a copy has been requested"))
			g.Expect(msg).To(ContainSubstring("retry"))
			g.Expect(msg).To(ContainSubstring(name))
		}
		// The copy was requested: a Pending ClonedImage (spec only) the hub picks up.
		ci := &apiv1.ClonedImage{}
		g.Expect(c.Get(ctx, client.ObjectKey{Name: name}, ci)).To(Succeed())
		g.Expect(ci.Spec.Source).To(Equal(ref.String()))
		g.Expect(ci.Status.Phase).To(BeEmpty())
		var all apiv1.ClonedImageList
		g.Expect(c.List(ctx, &all)).To(Succeed())
		n := 0
		for _, x := range all.Items {
			if x.Spec.Source == ref.String() {
				n++
			}
		}
		g.Expect(n).To(Equal(1), "one ClonedImage per image, however often it is denied")
		// busybox was requested too (the init container).
		bb, _ := imageref.Parse("busybox:1.36")
		g.Expect(c.Get(ctx, client.ObjectKey{Name: imageref.ObjectName(bb)}, &apiv1.ClonedImage{})).To(Succeed())

		// Once the hub has made it Ready, the same workload is admitted, and the mutating
		// webhook has already pointed it at the backup.
		ready(g, "busybox:1.36")
		ci.Status.Phase, ci.Status.Backup, ci.Status.Digest = apiv1.PhaseReady, backupRegistry+"/docker.io_acme_unbacked:1", agenttest.Digest
		g.Expect(c.Status().Update(ctx, ci)).To(Succeed())
		g.Expect(testenv.WaitFor(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
			return mc.Get(ctx, client.ObjectKeyFromObject(ci), ci) == nil && ci.IsReady(), nil
		})).To(Succeed())
		d := agenttest.Deployment(ns, "web", "busybox:1.36", img)
		g.Expect(c.Create(ctx, d)).To(Succeed())
		g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal(backupRegistry + "/docker.io_acme_unbacked:1"))
	})

	t.Run("warnModeAdmitsWithAWarning", func(t *testing.T) {
		g := NewWithT(t)
		setConfig(g, "WEBHOOK_MODE", "warn")
		defer setConfig(g, "WEBHOOK_MODE", "enforce")
		w := &warnings{}
		cfg := rest.CopyConfig(cluster.Config)
		cfg.WarningHandler = w
		wc, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
		g.Expect(err).NotTo(HaveOccurred())
		ns, err := agenttest.Namespace(ctx, c, nil)
		g.Expect(err).NotTo(HaveOccurred())
		const img = "ghcr.io/acme/warned:2"
		g.Expect(wc.Create(ctx, agenttest.Deployment(ns, "warned", img, img))).To(Succeed())
		got := w.take()
		g.Expect(got).To(ContainElement(And(
			ContainSubstring(`image "ghcr.io/acme/warned:2" has no backup yet`),
			ContainSubstring("a copy has been requested"))))
		ref, _ := imageref.Parse(img)
		g.Expect(c.Get(ctx, client.ObjectKey{Name: imageref.ObjectName(ref)}, &apiv1.ClonedImage{})).To(Succeed())
	})

	t.Run("optOutLabelAndSystemNamespacesAreExcluded", func(t *testing.T) {
		g := NewWithT(t)
		optedOut, err := agenttest.Namespace(ctx, c, map[string]string{apiv1.ValidateBackupsLabel: apiv1.ValidateBackupsDisabled})
		g.Expect(err).NotTo(HaveOccurred())
		const img = "quay.io/acme/excluded:3"
		for _, ns := range []string{optedOut, "kube-system"} {
			g.Expect(c.Create(ctx, agenttest.Deployment(ns, "excluded", img, img))).To(Succeed(), "namespace %s", ns)
		}
		ref, _ := imageref.Parse(img)
		g.Expect(apierrors.IsNotFound(c.Get(ctx, client.ObjectKey{Name: imageref.ObjectName(ref)}, &apiv1.ClonedImage{}))).To(BeTrue())
		// Nor are Pods rewritten there, though their image has a Ready backup.
		ready(g, "docker.io/library/traefik:3.1")
		p := agenttest.Pod(optedOut, "proxy", "traefik:3.1", "traefik:3.1")
		g.Expect(c.Create(ctx, p)).To(Succeed())
		g.Expect(workload.Images(p)).To(Equal([]string{"traefik:3.1"}))

		// The handler checks it too, should a configuration lack the namespaceSelector.
		v := &admission.Validator{Client: mc, Reader: mc, Lookup: &backups.Lookup{Reader: mc},
			Policy: backups.FromConfigMap(mc, agentNS), Decoder: webhookadmission.NewDecoder(testenv.Scheme())}
		for _, ns := range []string{optedOut, "kube-system", agentNS} {
			resp := v.Handle(ctx, request(g, admissionv1.Create, agenttest.Deployment(ns, "x", img, img)))
			g.Expect(resp.Allowed).To(BeTrue(), "namespace %s", ns)
		}
		other, err := agenttest.Namespace(ctx, c, nil)
		g.Expect(err).NotTo(HaveOccurred())
		resp := v.Handle(ctx, request(g, admissionv1.Create, agenttest.Deployment(other, "x", img, img)))
		g.Expect(resp.Allowed).To(BeFalse(), "the same request elsewhere is denied")
	})

	t.Run("mutatingWebhookRewritesWorkloadsAndPods", func(t *testing.T) {
		g := NewWithT(t)
		backup := ready(g, "docker.io/library/nginx:1.27")
		ns, err := agenttest.Namespace(ctx, c, nil)
		g.Expect(err).NotTo(HaveOccurred())
		waitPullSecret(ctx, g, c, ns)
		d := agenttest.Deployment(ns, "nginx", "nginx:1.27", "nginx:1.27")
		g.Expect(c.Create(ctx, d)).To(Succeed())
		g.Expect(workload.Images(d)).To(Equal([]string{backup}))
		orig, _ := workload.Originals(d)
		g.Expect(orig).To(HaveKeyWithValue("containers/main", "nginx:1.27"))

		p := agenttest.Pod(ns, "nginx", "nginx:1.27", "nginx:1.27")
		g.Expect(c.Create(ctx, p)).To(Succeed())
		g.Expect(workload.Images(p)).To(Equal([]string{backup}))
		g.Expect(p.Spec.ImagePullSecrets).To(ContainElement(corev1.LocalObjectReference{Name: apiv1.NamespacePullSecretName}))
	})

	t.Run("podModeLeavesTheWorkloadAndRewritesThePod", func(t *testing.T) {
		g := NewWithT(t)
		setConfig(g, "REWRITE_MODE", "pod")
		defer setConfig(g, "REWRITE_MODE", "workload")
		backup := ready(g, "docker.io/library/redis:7.4")
		ns, err := agenttest.Namespace(ctx, c, nil)
		g.Expect(err).NotTo(HaveOccurred())
		waitPullSecret(ctx, g, c, ns)
		d := agenttest.Deployment(ns, "redis", "redis:7.4", "redis:7.4")
		g.Expect(c.Create(ctx, d)).To(Succeed())
		g.Expect(workload.Images(d)).To(Equal([]string{"redis:7.4"}))
		g.Expect(d.Annotations).NotTo(HaveKey(workload.OriginalImagesAnnotation))

		// The Pod a ReplicaSet would create from it (envtest runs no controllers).
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "redis-"}, Spec: d.Spec.Template.Spec}
		g.Expect(c.Create(ctx, p)).To(Succeed())
		g.Expect(workload.Images(p)).To(Equal([]string{backup}))
		g.Expect(p.Spec.ImagePullSecrets).To(ContainElement(corev1.LocalObjectReference{Name: apiv1.NamespacePullSecretName}))
		// (That the patcher leaves workloads alone in pod mode is TestPatcher's to show.)
	})

	t.Run("podModeKeepsUpstreamWhileTheBackupRegistryIsDown", func(t *testing.T) {
		g := NewWithT(t)
		setConfig(g, "REWRITE_MODE", "pod")
		defer setConfig(g, "REWRITE_MODE", "workload")
		backup := ready(g, "docker.io/library/memcached:1.6")
		ns, err := agenttest.Namespace(ctx, c, nil)
		g.Expect(err).NotTo(HaveOccurred())
		waitPullSecret(ctx, g, c, ns)
		w := &warnings{}
		cfg := rest.CopyConfig(cluster.Config)
		cfg.WarningHandler = w
		wc, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
		g.Expect(err).NotTo(HaveOccurred())

		// The Pods are a ReplicaSet's, as a Deployment's would be (envtest runs no controllers,
		// so the ReplicaSet makes none itself).
		spec := agenttest.PodSpec("memcached:1.6", "memcached:1.6")
		rs := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cache-7d4b9"},
			Spec: appsv1.ReplicaSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cache"}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "cache"}}, Spec: spec},
			},
		}
		g.Expect(c.Create(ctx, rs)).To(Succeed())
		pod := func() *corev1.Pod {
			return &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: rs.Name + "-", Labels: map[string]string{"app": "cache"},
					OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}},
				Spec: *spec.DeepCopy(),
			}
		}
		// waitRewrite waits until a Pod created (as a dry run: no Event, no metric) is admitted
		// with image: the probe's cached result has caught up with the registry.
		waitRewrite := func(image string) {
			g.Expect(testenv.WaitFor(ctx, time.Minute, func(ctx context.Context) (bool, error) {
				p := pod()
				if err := c.Create(ctx, p, client.DryRunAll); err != nil {
					return false, err
				}
				return workload.Images(p)[0] == image, nil
			})).To(Succeed(), "Pods never admitted with %s", image)
		}
		fellBack := func() float64 {
			return counterValue(g, "image_cloner_admission_backup_unavailable_total", registry.Host)
		}

		// The registry answers: Pods go to the backup (the check below can fail).
		p := pod()
		g.Expect(c.Create(ctx, p)).To(Succeed())
		g.Expect(workload.Images(p)).To(Equal([]string{backup}))

		registry.Stop()
		waitRewrite("memcached:1.6")
		before := fellBack()
		w.take()
		p = pod()
		g.Expect(wc.Create(ctx, p)).To(Succeed())
		g.Expect(workload.Images(p)).To(Equal([]string{"memcached:1.6"}), "the Pod keeps its upstream image")
		g.Expect(p.Spec.ImagePullSecrets).To(BeEmpty(), "no pull secret for a backup it does not use")
		g.Expect(w.take()).To(ContainElement(And(
			ContainSubstring("backup registry "+registry.Host+" is not answering"),
			ContainSubstring(`"memcached:1.6"`))))
		g.Expect(fellBack() - before).To(Equal(1.0))
		g.Expect(testenv.WaitFor(ctx, time.Minute, func(ctx context.Context) (bool, error) {
			var list corev1.EventList
			if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
				return false, err
			}
			for _, e := range list.Items {
				if e.Reason == admission.ReasonBackupUnavailable && e.Type == corev1.EventTypeWarning &&
					e.InvolvedObject.Kind == "ReplicaSet" && e.InvolvedObject.Name == rs.Name && e.InvolvedObject.UID == rs.UID &&
					strings.Contains(e.Message, registry.Host) {
					return true, nil
				}
			}
			return false, nil
		})).To(Succeed(), "no BackupUnavailable Event on the ReplicaSet")

		// Back up: Pods go to the backup again, and nothing more is counted.
		g.Expect(registry.Start()).To(Succeed())
		waitRewrite(backup)
		before = fellBack()
		p = pod()
		g.Expect(c.Create(ctx, p)).To(Succeed())
		g.Expect(workload.Images(p)).To(Equal([]string{backup}))
		g.Expect(p.Spec.ImagePullSecrets).To(ContainElement(corev1.LocalObjectReference{Name: apiv1.NamespacePullSecretName}))
		g.Expect(fellBack()).To(Equal(before))
	})

	t.Run("autoModeRewritesPodsNoPatchedWorkloadOwns", func(t *testing.T) {
		g := NewWithT(t)
		setConfig(g, "REWRITE_MODE", "auto")
		defer setConfig(g, "REWRITE_MODE", "workload")
		const img = "caddy:2.8"
		backup := ready(g, "docker.io/library/caddy:2.8")
		ns, err := agenttest.Namespace(ctx, c, nil)
		g.Expect(err).NotTo(HaveOccurred())
		waitPullSecret(ctx, g, c, ns)
		owned := func(name string, ref metav1.OwnerReference) *corev1.Pod {
			p := agenttest.Pod(ns, name, img, img)
			p.OwnerReferences = []metav1.OwnerReference{ref}
			return p
		}
		// A Deployment (rewritten at admission: the workload path) and a ReplicaSet it owns,
		// of a revision made before the backup was Ready (its template is still upstream).
		d := agenttest.Deployment(ns, "web", img, img)
		g.Expect(c.Create(ctx, d)).To(Succeed())
		g.Expect(workload.Images(d)).To(Equal([]string{backup}), "auto patches workloads")
		rsOf := func(name string, owner *metav1.OwnerReference) *appsv1.ReplicaSet {
			labels := map[string]string{"app": name}
			rs := &appsv1.ReplicaSet{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
					Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: agenttest.PodSpec(img, img)}},
			}
			if owner != nil {
				rs.OwnerReferences = []metav1.OwnerReference{*owner}
			}
			g.Expect(c.Create(ctx, rs)).To(Succeed())
			return rs
		}
		deployRS := rsOf("web-5f7c9", metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment")))
		bareRS := rsOf("bare", nil)
		rsKind := appsv1.SchemeGroupVersion.WithKind("ReplicaSet")

		for _, tc := range []struct {
			name string
			pod  *corev1.Pod
			want string
		}{
			{"bare", agenttest.Pod(ns, "bare", img, img), backup},
			{"custom resource's", owned("cnpg-1", metav1.OwnerReference{APIVersion: "example.com/v1", Kind: "Cluster", Name: "cnpg", UID: "5b1c1d3e-0000-4000-8000-000000000001", Controller: ptr.To(true)}), backup},
			{"Job's", owned("job-x", metav1.OwnerReference{APIVersion: "batch/v1", Kind: "Job", Name: "job", UID: "5b1c1d3e-0000-4000-8000-000000000002", Controller: ptr.To(true)}), backup},
			{"bare ReplicaSet's", owned("bare-x", *metav1.NewControllerRef(bareRS, rsKind)), backup},
			// Left to the workload path: the Deployment is patched, its rollout replaces this Pod.
			{"Deployment's ReplicaSet's", owned("web-5f7c9-x", *metav1.NewControllerRef(deployRS, rsKind)), img},
		} {
			g.Expect(c.Create(ctx, tc.pod)).To(Succeed(), tc.name)
			g.Expect(workload.Images(tc.pod)).To(Equal([]string{tc.want}), tc.name)
		}
		// A ReplicaSet the webhook may not read (a real Forbidden from the API server, for a
		// user without RBAC): the whole Pod is rewritten, as in workload mode.
		nobody, err := cluster.Env.AddUser(envtest.User{Name: "no-rights"}, nil)
		g.Expect(err).NotTo(HaveOccurred())
		forbidden, err := client.New(nobody.Config(), client.Options{Scheme: testenv.Scheme()})
		g.Expect(err).NotTo(HaveOccurred())
		m := &admission.Mutator{Reader: mc, APIReader: forbidden, Lookup: &backups.Lookup{Reader: mc},
			Policy: backups.FromConfigMap(mc, agentNS), Decoder: webhookadmission.NewDecoder(testenv.Scheme())}
		fp := owned("web-5f7c9-z", *metav1.NewControllerRef(deployRS, rsKind))
		fp.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
		raw, err := json.Marshal(fp)
		g.Expect(err).NotTo(HaveOccurred())
		resp := m.Handle(ctx, webhookadmission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: "forbidden", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: ns, Name: fp.Name, Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw},
		}})
		g.Expect(resp.Allowed).To(BeTrue())
		var imagePatches []any
		for _, p := range resp.Patches {
			if strings.HasSuffix(p.Path, "/image") {
				imagePatches = append(imagePatches, p.Value)
			}
		}
		g.Expect(imagePatches).To(ConsistOf(backup, backup), "both containers rewritten")

		// Control: the same Deployment's Pod in workload mode is rewritten, so the check above
		// can fail.
		setConfig(g, "REWRITE_MODE", "workload")
		p := owned("web-5f7c9-y", *metav1.NewControllerRef(deployRS, rsKind))
		g.Expect(c.Create(ctx, p)).To(Succeed())
		g.Expect(workload.Images(p)).To(Equal([]string{backup}))
	})

	t.Run("reinvocationRewritesASidecarInjectedAfterUs", func(t *testing.T) {
		g := NewWithT(t)
		setConfig(g, "REWRITE_MODE", "auto")
		defer setConfig(g, "REWRITE_MODE", "workload")
		const appImage, sidecarImage = "docker.io/library/haproxy:3.0", "docker.io/istio/proxyv2:1.24.0"
		appBackup, sidecarBackup := ready(g, appImage), ready(g, sidecarImage)
		injector := startSidecarInjector(sidecarImage)
		defer injector.server.Close()
		cfg := injector.configuration()
		g.Expect(c.Create(ctx, cfg)).To(Succeed())
		defer func() { g.Expect(c.Delete(context.Background(), cfg)).To(Succeed()) }()
		ns, err := agenttest.Namespace(ctx, c, map[string]string{"sidecar-injection": "on"})
		g.Expect(err).NotTo(HaveOccurred())
		waitPullSecret(ctx, g, c, ns)
		pod := func() *corev1.Pod {
			p := agenttest.Pod(ns, "", appImage, appImage)
			p.GenerateName = "app-"
			return p
		}
		images := func(p *corev1.Pod) map[string]string {
			out := map[string]string{}
			for _, r := range workload.Refs(&p.Spec) {
				out[r.Key()] = r.Image
			}
			return out
		}
		// setReinvocation sets our Pod webhook's policy and waits (dry runs: nothing stored)
		// until the API server applies it, seen by the sidecar's image.
		setReinvocation := func(policy admissionregistrationv1.ReinvocationPolicyType, sidecarWant string) {
			g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				m := &admissionregistrationv1.MutatingWebhookConfiguration{}
				if err := c.Get(ctx, client.ObjectKey{Name: app.DefaultMutatingWebhook}, m); err != nil {
					return err
				}
				for i := range m.Webhooks {
					if m.Webhooks[i].Name == "mutate-pod.image-cloner.io" {
						m.Webhooks[i].ReinvocationPolicy = &policy
					}
				}
				return c.Update(ctx, m)
			})).To(Succeed())
			g.Expect(testenv.WaitFor(ctx, time.Minute, func(ctx context.Context) (bool, error) {
				p := pod()
				if err := c.Create(ctx, p, client.DryRunAll); err != nil {
					return false, err
				}
				return images(p)["containers/"+sidecarName] == sidecarWant, nil
			})).To(Succeed(), "reinvocationPolicy %s never applied", policy)
		}
		create := func() (*corev1.Pod, float64, int64) {
			ours, theirs := mutatePodCalls(), injector.calls.Load()
			p := pod()
			g.Expect(c.Create(ctx, p)).To(Succeed())
			stored := &corev1.Pod{}
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(p), stored)).To(Succeed())
			return stored, mutatePodCalls() - ours, injector.calls.Load() - theirs
		}

		// As shipped (deploy/webhooks: IfNeeded).
		setReinvocation(admissionregistrationv1.IfNeededReinvocationPolicy, sidecarBackup)
		p, ours, theirs := create()
		g.Expect(images(p)).To(Equal(map[string]string{
			"initContainers/init": appBackup, "containers/main": appBackup, "containers/" + sidecarName: sidecarBackup,
		}))
		n := 0
		for _, c := range p.Spec.Containers {
			if c.Name == sidecarName {
				n++
			}
		}
		g.Expect(n).To(Equal(1), "the sidecar is injected exactly once")
		orig, _ := workload.Originals(p)
		g.Expect(orig).To(HaveKeyWithValue("containers/"+sidecarName, sidecarImage))
		g.Expect(orig).To(HaveKeyWithValue("containers/main", appImage))
		testenv.Report(t, "with IfNeeded: image-cloner's Pod webhook called %v times, the injector %d", ours, theirs)
		g.Expect(ours).To(Equal(2.0), "once, then once reinvoked after the injector changed the Pod")
		g.Expect(theirs).To(Equal(int64(1)))

		// A Deployment's Pod, of a revision made before the app's backup was Ready: in auto the
		// template's containers are the patcher's, the injected sidecar is ours.
		d := agenttest.Deployment(ns, "web", appImage, appImage)
		g.Expect(c.Create(ctx, d)).To(Succeed())
		labels := map[string]string{"app": "web"}
		rs := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-6b8d7",
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))}},
			Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: agenttest.PodSpec(appImage, appImage)}},
		}
		g.Expect(c.Create(ctx, rs)).To(Succeed())
		dp := pod()
		dp.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}
		g.Expect(c.Create(ctx, dp)).To(Succeed())
		g.Expect(images(dp)).To(Equal(map[string]string{
			"initContainers/init": appImage, "containers/main": appImage, "containers/" + sidecarName: sidecarBackup,
		}))

		// Control: without reinvocation the sidecar keeps its upstream image.
		setReinvocation(admissionregistrationv1.NeverReinvocationPolicy, sidecarImage)
		defer setReinvocation(admissionregistrationv1.IfNeededReinvocationPolicy, sidecarBackup)
		p, ours, theirs = create()
		g.Expect(images(p)).To(HaveKeyWithValue("containers/"+sidecarName, sidecarImage))
		g.Expect(images(p)).To(HaveKeyWithValue("containers/main", appBackup))
		testenv.Report(t, "with Never: image-cloner's Pod webhook called %v times, the injector %d", ours, theirs)
		g.Expect(ours).To(Equal(1.0))
		g.Expect(theirs).To(Equal(int64(1)))
	})

	t.Run("certificateRotationFailsNoAdmission", func(t *testing.T) {
		g := NewWithT(t)
		backup := ready(g, "docker.io/library/httpd:2.4")
		ns, err := agenttest.Namespace(ctx, c, nil)
		g.Expect(err).NotTo(HaveOccurred())

		// The API server keeps its connections to the webhook alive, so it only meets a new
		// serving certificate when it reconnects (as it does when the caBundle changes). Every
		// round therefore also makes a fresh TLS connection the way the API server would
		// reconnect at that moment: trusting the caBundle currently in the configuration.
		var sent, failed, unmutated, dialed, dialFailed atomic.Int64
		var firstErr, firstDialErr atomic.Value
		addr := net.JoinHostPort(wh.LocalServingHost, fmt.Sprint(wh.LocalServingPort))
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				d := agenttest.Deployment(ns, fmt.Sprintf("load-%d", i), "httpd:2.4", "httpd:2.4")
				sent.Add(1)
				if err := c.Create(ctx, d); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				if workload.Images(d)[0] != backup {
					unmutated.Add(1)
				}
				dialed.Add(1)
				if err := dialWebhook(ctx, c, addr, wh.LocalServingHost); err != nil {
					dialFailed.Add(1)
					firstDialErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
		waitSent := func(n int64) {
			target := sent.Load() + n
			g.Expect(testenv.WaitFor(ctx, time.Minute, func(context.Context) (bool, error) {
				return sent.Load() >= target, nil
			})).To(Succeed())
		}

		waitSent(20)
		before := agent.Certs.Current()
		start := time.Now()
		agent.Certs.Rotate(false)
		g.Expect(testenv.WaitFor(ctx, 30*time.Second, func(context.Context) (bool, error) {
			return agent.Certs.Current().SerialNumber.Cmp(before.SerialNumber) != 0, nil
		})).To(Succeed())
		testenv.Report(t, "serving certificate renewed %s after Rotate", time.Since(start).Round(time.Millisecond))
		g.Expect(signer(agent.Certs.Current(), before)).To(BeTrue(), "a serving renewal keeps the CA")
		waitSent(20)

		// Now a new CA: it enters the bundle first, the serving certificate follows after
		// the overlap.
		mid := agent.Certs.Current()
		start = time.Now()
		agent.Certs.Rotate(true)
		g.Expect(testenv.WaitFor(ctx, time.Minute, func(context.Context) (bool, error) {
			cur := agent.Certs.Current()
			return cur.SerialNumber.Cmp(mid.SerialNumber) != 0 && cur.Issuer.CommonName != mid.Issuer.CommonName, nil
		})).To(Succeed())
		testenv.Report(t, "serving certificate moved to a new CA %s after Rotate(ca) (overlap %s)", time.Since(start).Round(time.Millisecond), caOverlap)
		waitSent(20)
		close(stop)
		<-done

		testenv.Report(t, "admissions during two rotations: %d sent, %d failed, %d not mutated", sent.Load(), failed.Load(), unmutated.Load())
		testenv.Report(t, "fresh TLS connections during two rotations: %d made, %d failed", dialed.Load(), dialFailed.Load())
		g.Expect(failed.Load()).To(BeZero(), "first failure: %v", firstErr.Load())
		g.Expect(dialFailed.Load()).To(BeZero(), "first TLS failure: %v", firstDialErr.Load())
		g.Expect(unmutated.Load()).To(BeZero(), "every request went through the mutating webhook")
		g.Expect(len(caBundle(ctx, g, c))).To(Equal(2), "old and new CA both trusted until the old expires")
	})

	t.Run("restoreRemovesTheWebhooksAndPutsOriginalsBack", func(t *testing.T) {
		g := NewWithT(t)
		backup := ready(g, "docker.io/library/postgres:17")
		ns, err := agenttest.Namespace(ctx, c, nil)
		g.Expect(err).NotTo(HaveOccurred())
		d := agenttest.Deployment(ns, "db", "postgres:17", "postgres:17")
		g.Expect(c.Create(ctx, d)).To(Succeed())
		g.Expect(workload.Images(d)).To(Equal([]string{backup}))

		// Refused while the agent runs: its patcher would undo the restore.
		_, err = app.Restore(ctx, cluster.Config, app.RestoreOptions{Namespace: agentNS})
		g.Expect(err).To(MatchError(ContainSubstring("the agent is still running")))
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
		g.Expect(workload.Images(d)).To(Equal([]string{backup}))

		cancel() // uninstall: the agent stops first (and releases its lease)
		g.Expect(<-mgrDone).To(Succeed())
		n, err := app.Restore(context.Background(), cluster.Config, app.RestoreOptions{Namespace: agentNS})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(n).To(BeNumerically(">=", 1))
		bg := context.Background()
		g.Expect(c.Get(bg, client.ObjectKeyFromObject(d), d)).To(Succeed())
		g.Expect(workload.Images(d)).To(Equal([]string{"postgres:17"}))
		g.Expect(d.Spec.Template.Spec.ImagePullSecrets).To(BeEmpty())
		g.Expect(apierrors.IsNotFound(c.Get(bg, client.ObjectKey{Name: app.DefaultValidatingWebhook}, &admissionregistrationv1.ValidatingWebhookConfiguration{}))).To(BeTrue())
		g.Expect(apierrors.IsNotFound(c.Get(bg, client.ObjectKey{Name: app.DefaultMutatingWebhook}, &admissionregistrationv1.MutatingWebhookConfiguration{}))).To(BeTrue())
		// With the webhooks gone, a Deployment is admitted without any rewriting.
		d2 := agenttest.Deployment(ns, "db2", "postgres:17", "postgres:17")
		g.Expect(c.Create(bg, d2)).To(Succeed())
		g.Expect(workload.Images(d2)).To(Equal([]string{"postgres:17"}))
	})
}

// agentUser creates a user bound to the ClusterRole and Role of the rbac manifest and returns
// its configuration.
func agentUser(ctx context.Context, g Gomega, cluster *testenv.Cluster, rbacPath string) *rest.Config {
	const user = "image-cloner-agent-test"
	data, err := os.ReadFile(rbacPath)
	g.Expect(err).NotTo(HaveOccurred())
	decode := serializer.NewCodecFactory(testenv.Scheme()).UniversalDeserializer().Decode
	subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
	roles := 0
	for _, doc := range strings.Split(string(data), "\n---\n") {
		obj, _, err := decode([]byte(doc), nil, nil)
		g.Expect(err).NotTo(HaveOccurred())
		switch o := obj.(type) {
		case *rbacv1.ClusterRole:
			g.Expect(cluster.Client.Create(ctx, o)).To(Succeed())
			g.Expect(cluster.Client.Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: o.Name + "-test"}, Subjects: subject,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: o.Name},
			})).To(Succeed())
			roles++
		case *rbacv1.Role:
			g.Expect(cluster.Client.Create(ctx, o)).To(Succeed())
			g.Expect(cluster.Client.Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: o.Name + "-test"}, Subjects: subject,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: o.Name},
			})).To(Succeed())
			roles++
		}
	}
	g.Expect(roles).To(Equal(2))
	// The API server authorizes from a cache of the RBAC objects: wait until both bindings are
	// in it, or the agent starts with its first requests forbidden.
	for _, attrs := range []authorizationv1.ResourceAttributes{
		{Verb: "list", Group: apiv1.GroupVersion.Group, Resource: "clonedimages"},            // ClusterRole
		{Verb: "get", Resource: "configmaps", Namespace: agentNS, Name: apiv1.ConfigMapName}, // Role
	} {
		g.Expect(testenv.WaitFor(ctx, time.Minute, func(ctx context.Context) (bool, error) {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user, ResourceAttributes: &attrs}}
			if err := cluster.Client.Create(ctx, sar); err != nil {
				return false, err
			}
			return sar.Status.Allowed, nil
		})).To(Succeed(), "the agent's RBAC never took effect for %+v", attrs)
	}
	u, err := cluster.Env.AddUser(envtest.User{Name: user}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	return u.Config()
}

// failClosed sets failurePolicy Fail on the installed webhooks, so that a webhook that cannot
// be reached fails the request (the test's signal) instead of admitting it unchecked.
func failClosed(ctx context.Context, g Gomega, c client.Client) {
	fail := admissionregistrationv1.Fail
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	g.Expect(c.Get(ctx, client.ObjectKey{Name: app.DefaultValidatingWebhook}, v)).To(Succeed())
	for i := range v.Webhooks {
		g.Expect(*v.Webhooks[i].FailurePolicy).To(Equal(admissionregistrationv1.Ignore), "as shipped")
		v.Webhooks[i].FailurePolicy = &fail
	}
	g.Expect(c.Update(ctx, v)).To(Succeed())
	m := &admissionregistrationv1.MutatingWebhookConfiguration{}
	g.Expect(c.Get(ctx, client.ObjectKey{Name: app.DefaultMutatingWebhook}, m)).To(Succeed())
	for i := range m.Webhooks {
		m.Webhooks[i].FailurePolicy = &fail
	}
	g.Expect(c.Update(ctx, m)).To(Succeed())
}

func waitPullSecret(ctx context.Context, g Gomega, c client.Client, ns string) {
	g.Expect(testenv.WaitFor(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: apiv1.NamespacePullSecretName}, &corev1.Secret{})
		return err == nil, client.IgnoreNotFound(err)
	})).To(Succeed())
}

func caBundle(ctx context.Context, g Gomega, c client.Client) []*x509.Certificate {
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	g.Expect(c.Get(ctx, client.ObjectKey{Name: app.DefaultValidatingWebhook}, v)).To(Succeed())
	var out []*x509.Certificate
	rest := v.Webhooks[0].ClientConfig.CABundle
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return out
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		g.Expect(err).NotTo(HaveOccurred())
		out = append(out, cert)
	}
}

// dialWebhook makes a TLS connection to the webhook server trusting only the caBundle of the
// validating configuration, verifying the server name as the API server does.
func dialWebhook(ctx context.Context, c client.Client, addr, host string) error {
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := c.Get(ctx, client.ObjectKey{Name: app.DefaultValidatingWebhook}, v); err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(v.Webhooks[0].ClientConfig.CABundle) {
		return errors.New("no certificate in the caBundle")
	}
	d := tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: host, MinVersion: tls.VersionTLS12}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// signer reports whether a and b have the same issuer.
func signer(a, b *x509.Certificate) bool { return a.Issuer.CommonName == b.Issuer.CommonName }

func request(g Gomega, op admissionv1.Operation, d *appsv1.Deployment) webhookadmission.Request {
	d = d.DeepCopy()
	d.TypeMeta = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}
	raw, err := json.Marshal(d)
	g.Expect(err).NotTo(HaveOccurred())
	return webhookadmission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "test",
		Kind:      metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"},
		Namespace: d.Namespace, Name: d.Name, Operation: op,
		Object: runtime.RawExtension{Raw: raw},
	}}
}

// counterValue reads counter name{registry} from the agent's metrics (controller-runtime's
// registry: the agent runs in this process), 0 when absent.
func counterValue(g Gomega, name, registry string) float64 {
	families, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "registry" && l.GetValue() == registry {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// loopbackCerts are the certificate options of an agent serving envtest's webhooks on loopback,
// checked every 100 ms so that tests see rotations quickly.
func loopbackCerts() certs.Options {
	return certs.Options{
		ExtraDNSNames: []string{"localhost"},
		IPAddresses:   []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		CheckInterval: 100 * time.Millisecond,
		CAOverlap:     caOverlap,
	}
}
