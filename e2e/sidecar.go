package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// InjectedSidecarSpec: a sidecar that ANOTHER mutating webhook injects is backed up and
// pointed at its backup by the agent, without a loop. The test process serves a sidecar
// injector (e2e/injector.go: HTTPS, a CA of its own, registered in every member by a
// MutatingWebhookConfiguration with a url, failurePolicy Fail, reinvocationPolicy Never,
// called after the agent's webhook) that adds container "proxy" of a fresh upstream image to
// the Pods of the spec's namespaces only. With REWRITE_MODE=auto, in every member:
//
//   - a first bare Pod of a fresh app image, admitted before any backup exists, gets the proxy
//     with its upstream image; the hub discovers both images from that Pod and backs them up;
//   - a second bare Pod comes back from its create with c0 and the proxy pointing at their
//     backups and both originals in image-cloner.io/original-images; the injector saw c0
//     rewritten already, so the agent's webhook ran before it and the proxy was rewritten when
//     the API server reinvoked it;
//   - a Deployment's Pod, of a revision (a ReplicaSet) made before the backups, and a Pod of a
//     DaemonSet whose template declares the app image (opted out, so its template keeps it),
//     both dry runs, keep c0 for the patcher, as auto mode does, and still get the proxy's
//     backup, recorded as the only original: only the reinvocation rewrites it there, since
//     the agent's first call changed nothing;
//   - the injector was called once per Pod created, never on a Pod it had injected already,
//     and each Pod holds one proxy container.
//
// The control, in the first member: in a namespace opted out of image-cloner
// (validate-backups.image-cloner.io=disable) and injected alike, the proxy keeps its upstream
// image, so the check on the proxy's image can fail. The spec restores each member's
// ConfigMap and removes the injector's configurations when it ends.
func InjectedSidecarSpec(ctx context.Context, t *testing.T, in FleetInput) {
	g := gomega.NewWithT(t)
	appRef, _ := pushImage(t, in, "sidecar-app")
	proxyRef, _ := pushImage(t, in, "sidecar-proxy")
	bind, host := injectorAddresses(in)
	inj, err := startInjector(t, proxyRef, bind, host)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	t.Logf("the sidecar injector serves %s (listening on %s)", inj.url, bind)

	injected := map[*Kube]map[string]int{} // Pods created with the injector's stamp, by namespace
	created := func(m *Kube, p *corev1.Pod) {
		if _, ok := p.Annotations[injectionAnnotation]; ok {
			injected[m][p.Namespace]++
		}
	}
	nss := map[*Kube]string{}
	for _, m := range in.Members {
		injected[m] = map[string]int{}
		useRewriteMode(ctx, t, in, m, config.RewriteAuto)
		inj.register(ctx, t, m)
		ns := labelledNamespace(ctx, t, m, map[string]string{injectionLabel: "on"})
		nss[m] = ns
		// The API server sees a new webhook configuration a moment after it is created: retry
		// with a new Pod until the injector is called. Pods made before are not injected.
		var first *corev1.Pod
		g.Eventually(func(g gomega.Gomega) {
			first = sidecarPod(ns, "first-"+randomSuffix(), appRef)
			g.Expect(m.Client.Create(ctx, first)).To(gomega.Succeed(), "creating a Pod in %s/%s", m.Name, ns)
			created(m, first)
			g.Expect(containerImage(first, injectedContainer)).NotTo(gomega.BeEmpty(), "the injector is called in %s", m.Name)
		}).WithTimeout(in.timeout()).WithPolling(time.Second).Should(gomega.Succeed())
		t.Logf("%s: first Pod %s/%s admitted with %s=%s", m.Name, ns, first.Name, injectedContainer, containerImage(first, injectedContainer))
	}

	for _, m := range in.Members {
		ns := nss[m]
		appCI, proxyCI := waitReady(ctx, t, in, m, appRef), waitReady(ctx, t, in, m, proxyRef)

		// A bare Pod: c0 is rewritten at the agent's first call, the proxy at its second.
		var p *corev1.Pod
		g.Eventually(func(g gomega.Gomega) {
			if p != nil {
				_ = m.Client.Delete(ctx, p)
			}
			p = sidecarPod(ns, "second-"+randomSuffix(), appRef)
			g.Expect(m.Client.Create(ctx, p)).To(gomega.Succeed())
			created(m, p)
			g.Expect(isBackupOf(p.Spec.Containers[0].Image, appCI)).To(gomega.BeEmpty(), "c0 of Pod %s/%s in %s", ns, p.Name, m.Name)
			g.Expect(isBackupOf(containerImage(p, injectedContainer), proxyCI)).To(gomega.BeEmpty(), "the injected %s of Pod %s/%s in %s", injectedContainer, ns, p.Name, m.Name)
		}).WithTimeout(in.timeout()).WithPolling(time.Second).Should(gomega.Succeed())
		originals, err := workload.Originals(p)
		g.Expect(err).NotTo(gomega.HaveOccurred())
		g.Expect(originals).To(gomega.HaveKeyWithValue("containers/"+injectedContainer, proxyRef), "the agent keeps the sidecar's original image")
		g.Expect(originals).To(gomega.HaveKeyWithValue("containers/c0", appRef))
		call, err := inj.call(p)
		g.Expect(err).NotTo(gomega.HaveOccurred())
		g.Expect(isBackupOf(call.Images["c0"], appCI)).To(gomega.BeEmpty(),
			"the injector sees c0 rewritten: the agent's webhook ran first, so the proxy's rewrite is its reinvocation")
		g.Expect(onlyOneSidecar(p)).To(gomega.Succeed())
		t.Logf("%s: bare Pod %s/%s admitted with c0=%s and %s=%s (the injector saw c0=%s)", m.Name, ns, p.Name,
			p.Spec.Containers[0].Image, injectedContainer, containerImage(p, injectedContainer), call.Images["c0"])

		// Workloads' Pods: c0 is their template's, left to the patcher in auto mode; the
		// injected proxy is not in the template, and only the reinvocation rewrites it. As dry
		// runs, so no controller of a kind cluster runs or replaces them.
		rs, ds := deploymentRevision(ctx, t, m, ns, appRef), optedOutDaemonSet(ctx, t, m, ns, appRef)
		for _, w := range []struct {
			what  string
			owner metav1.OwnerReference
		}{
			{"a Deployment's Pod (ReplicaSet " + rs.Name + ")", rs},
			{"DaemonSet " + ds.Name + "'s Pod", ds},
		} {
			owner := w.owner
			// Until the agent's cache has a DaemonSet, auto mode sees no patched owner and
			// rewrites c0 too: retry.
			g.Eventually(func(g gomega.Gomega) {
				p = sidecarPod(ns, owner.Name+"-"+randomSuffix(), appRef)
				p.OwnerReferences = []metav1.OwnerReference{owner}
				g.Expect(m.Client.Create(ctx, p, client.DryRunAll)).To(gomega.Succeed())
				created(m, p)
				g.Expect(isBackupOf(containerImage(p, injectedContainer), proxyCI)).To(gomega.BeEmpty(), "the injected %s of %s in %s", injectedContainer, w.what, m.Name)
				g.Expect(p.Spec.Containers[0].Image).To(gomega.Equal(appRef), "c0 of %s, declared by its template, is left to the patcher in auto mode", w.what)
			}).WithTimeout(in.timeout()).WithPolling(time.Second).Should(gomega.Succeed())
			originals, err := workload.Originals(p)
			g.Expect(err).NotTo(gomega.HaveOccurred())
			g.Expect(originals).To(gomega.Equal(map[string]string{"containers/" + injectedContainer: proxyRef}), "the agent records the sidecar's original, and only it")
			call, err := inj.call(p)
			g.Expect(err).NotTo(gomega.HaveOccurred())
			g.Expect(call.Images["c0"]).To(gomega.Equal(appRef))
			g.Expect(onlyOneSidecar(p)).To(gomega.Succeed())
			t.Logf("%s: %s, a dry run, admitted with c0=%s and %s=%s", m.Name, w.what,
				p.Spec.Containers[0].Image, injectedContainer, containerImage(p, injectedContainer))
		}

		if m == in.Members[0] {
			// The control: the same injection in a namespace opted out of image-cloner keeps
			// the proxy upstream: the check above fails without the agent's rewrite.
			off := labelledNamespace(ctx, t, m, map[string]string{injectionLabel: "on", v1alpha1.ValidateBackupsLabel: v1alpha1.ValidateBackupsDisabled})
			var c *corev1.Pod
			g.Eventually(func(g gomega.Gomega) {
				c = sidecarPod(off, "control-"+randomSuffix(), appRef)
				g.Expect(m.Client.Create(ctx, c)).To(gomega.Succeed())
				created(m, c)
				g.Expect(containerImage(c, injectedContainer)).NotTo(gomega.BeEmpty(), "the injector is called in %s/%s", m.Name, off)
			}).WithTimeout(in.timeout()).WithPolling(time.Second).Should(gomega.Succeed())
			g.Expect(isBackupOf(containerImage(c, injectedContainer), proxyCI)).NotTo(gomega.BeEmpty(), "in opted-out %s the proxy is not rewritten", off)
			g.Expect(containerImage(c, injectedContainer)).To(gomega.Equal(proxyRef))
			g.Expect(c.Spec.Containers[0].Image).To(gomega.Equal(appRef))
			t.Logf("%s: the control: in opted-out namespace %s the injected %s keeps %s", m.Name, off, injectedContainer, containerImage(c, injectedContainer))
			checkNoLoop(g, inj, m, off, injected[m][off])
		}
		checkNoLoop(g, inj, m, ns, injected[m][ns])
		t.Logf("%s: the injector was called %d times in %s, once per Pod created, none on a Pod it had injected", m.Name, injected[m][ns], ns)
	}
}

// checkNoLoop checks that the injector was called in k's namespace ns once per Pod created
// with its stamp (want of them), and never on a Pod it had stamped already. The calls are
// made within the creates, which have returned: the counts are final.
func checkNoLoop(g gomega.Gomega, inj *sidecarInjector, k *Kube, ns string, want int) {
	calls := inj.callsIn(k.Name, ns)
	g.Expect(calls).To(gomega.HaveLen(want), "the injector is called once per Pod created in %s/%s", k.Name, ns)
	for i, c := range calls {
		g.Expect(c.Stamped).To(gomega.BeFalse(), "call %d of the injector in %s/%s was on a Pod it had injected", i+1, k.Name, ns)
	}
}

// onlyOneSidecar says whether p holds exactly one injected container.
func onlyOneSidecar(p *corev1.Pod) error {
	n := 0
	for _, c := range p.Spec.Containers {
		if c.Name == injectedContainer {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("pod %s/%s holds %d %s containers, not 1", p.Namespace, p.Name, n, injectedContainer)
	}
	return nil
}

// sidecarPod is a bare Pod of image placed on no node: the specs look at what admission made
// of it, nothing needs to run it.
func sidecarPod(ns, name, image string) *corev1.Pod {
	p := pod(ns, name, image, nil)
	p.Spec.NodeSelector = map[string]string{"e2e.image-cloner.io/no-such-node": "true"}
	return p
}

// containerImage returns the image of p's container named name, or "".
func containerImage(p *corev1.Pod, name string) string {
	for _, c := range p.Spec.Containers {
		if c.Name == name {
			return c.Image
		}
	}
	return ""
}

// deploymentRevision creates in k's namespace ns a Deployment of image and a ReplicaSet it
// controls with that template, as the Deployment controller makes a revision, and returns the
// controller reference the ReplicaSet's Pods carry. Both have no replicas and the Deployment
// is paused: where controllers run (kind), none makes Pods or another revision. The agent
// rewrites or patches the Deployment once image is backed up; the ReplicaSet's template is
// image's, as that of a revision made before the backup is.
func deploymentRevision(ctx context.Context, t testing.TB, k *Kube, ns, image string) metav1.OwnerReference {
	t.Helper()
	g := gomega.NewWithT(t)
	d := deployment(ns, "web-"+randomSuffix(), image)
	d.Spec.Replicas, d.Spec.Paused = ptr.To[int32](0), true
	g.Expect(k.Client.Create(ctx, d)).To(gomega.Succeed(), "creating Deployment %s/%s in %s", ns, d.Name, k.Name)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: d.Name + "-6b8d7", Labels: d.Spec.Template.Labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](0), Selector: d.Spec.Selector, Template: podTemplate(image)},
	}
	g.Expect(k.Client.Create(ctx, rs)).To(gomega.Succeed(), "creating ReplicaSet %s/%s in %s", ns, rs.Name, k.Name)
	return *metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))
}

// optedOutDaemonSet creates in k's namespace ns a DaemonSet of image, opted out (so its
// template keeps image) and placed on no node, and returns the controller reference its Pods
// carry.
func optedOutDaemonSet(ctx context.Context, t testing.TB, k *Kube, ns, image string) metav1.OwnerReference {
	t.Helper()
	ds := daemonSet(ns, "node-"+randomSuffix(), image)
	ds.Labels = map[string]string{v1alpha1.IgnoreLabel: v1alpha1.IgnoreValue}
	ds.Spec.Template.Spec.NodeSelector = map[string]string{"e2e.image-cloner.io/no-such-node": "true"}
	gomega.NewWithT(t).Expect(k.Client.Create(ctx, ds)).To(gomega.Succeed(), "creating DaemonSet %s/%s in %s", ns, ds.Name, k.Name)
	return *metav1.NewControllerRef(ds, appsv1.SchemeGroupVersion.WithKind("DaemonSet"))
}

// labelledNamespace creates a namespace with a generated name and labels in k.
func labelledNamespace(ctx context.Context, t testing.TB, k *Kube, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-", Labels: labels}}
	gomega.NewWithT(t).Expect(k.Client.Create(ctx, ns)).To(gomega.Succeed(), "creating a namespace in %s", k.Name)
	return ns.Name
}
