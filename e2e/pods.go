package e2e

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// useRewriteMode sets REWRITE_MODE to mode in the agent's ConfigMap of k and puts the
// ConfigMap back as it was when t ends. REWRITE_MODE is a setting of the whole member (the
// agent reads it at each admission request, no restart), so the specs that need a mode switch
// it for their own duration; they run one after another, never beside another spec. An agent
// running without a ConfigMap (its defaults: the kustomize install on kind) gets one holding
// BACKUP_REGISTRY and the mode, deleted at the end.
func useRewriteMode(ctx context.Context, t testing.TB, in FleetInput, k *Kube, mode config.RewriteMode) {
	t.Helper()
	g := gomega.NewWithT(t)
	key := client.ObjectKey{Namespace: in.HubNamespace, Name: v1alpha1.ConfigMapName}
	var cm corev1.ConfigMap
	err := k.Client.Get(ctx, key, &cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
			Data: map[string]string{config.KeyBackupRegistry: in.BackupRegistry, config.KeyRewriteMode: string(mode)}}
		g.Expect(k.Client.Create(ctx, &cm)).To(gomega.Succeed(), "creating ConfigMap %s in %s", key, k.Name)
		t.Cleanup(func() {
			if err := k.Client.Delete(context.WithoutCancel(ctx), &cm); client.IgnoreNotFound(err) != nil {
				t.Errorf("deleting ConfigMap %s in %s, made for REWRITE_MODE=%s: %v", key, k.Name, mode, err)
			}
		})
		return
	case err != nil:
		t.Fatalf("reading ConfigMap %s in %s: %v", key, k.Name, err)
	}
	before := maps.Clone(cm.Data)
	setData(ctx, t, k, key, func(data map[string]string) map[string]string {
		if data == nil {
			data = map[string]string{}
		}
		data[config.KeyRewriteMode] = string(mode)
		if data[config.KeyBackupRegistry] == "" {
			data[config.KeyBackupRegistry] = in.BackupRegistry
		}
		return data
	})
	t.Cleanup(func() {
		setData(context.WithoutCancel(ctx), t, k, key, func(map[string]string) map[string]string { return before })
	})
}

// setData replaces the data of ConfigMap key in k by what change makes of it, retrying on
// conflicts.
func setData(ctx context.Context, t testing.TB, k *Kube, key client.ObjectKey, change func(map[string]string) map[string]string) {
	t.Helper()
	gomega.NewWithT(t).Eventually(func() error {
		var cm corev1.ConfigMap
		if err := k.Client.Get(ctx, key, &cm); err != nil {
			return err
		}
		cm.Data = change(cm.Data)
		return k.Client.Update(ctx, &cm)
	}).WithTimeout(30*time.Second).WithPolling(poll).Should(gomega.Succeed(), "updating ConfigMap %s in %s", key, k.Name)
}

// operatorKind is a custom resource kind installed for one spec, standing for an operator's
// (a CloudNativePG Cluster, a Tekton TaskRun): Pods it owns have a controller that is no
// workload the agent patches.
type operatorKind struct {
	apiVersion, kind string
}

// installOperatorKind installs in k a namespaced CRD of its own group (so specs and runs never
// share one) that accepts any content, waits until it is served, and deletes it when t ends.
func installOperatorKind(ctx context.Context, t testing.TB, k *Kube) operatorKind {
	t.Helper()
	g := gomega.NewWithT(t)
	group := "op-" + randomSuffix() + ".e2e.image-cloner.io"
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "widgets." + group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: group,
			Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptr.To(true)}},
			}},
		},
	}
	g.Expect(k.Client.Create(ctx, crd)).To(gomega.Succeed(), "installing CRD %s in %s", crd.Name, k.Name)
	t.Cleanup(func() {
		if err := k.Client.Delete(context.WithoutCancel(ctx), crd); client.IgnoreNotFound(err) != nil {
			t.Errorf("deleting CRD %s in %s: %v", crd.Name, k.Name, err)
		}
	})
	g.Eventually(func(g gomega.Gomega) {
		var got apiextensionsv1.CustomResourceDefinition
		g.Expect(k.Client.Get(ctx, client.ObjectKeyFromObject(crd), &got)).To(gomega.Succeed())
		established := false
		for _, c := range got.Status.Conditions {
			established = established || (c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue)
		}
		g.Expect(established).To(gomega.BeTrue(), "CRD %s is not Established in %s", crd.Name, k.Name)
	}).WithTimeout(30 * time.Second).WithPolling(poll).Should(gomega.Succeed())
	return operatorKind{apiVersion: group + "/v1", kind: "Widget"}
}

// create makes an instance of o named name in ns and returns the controller reference its Pods
// carry. The RESTMapper may not know the new kind at once: it retries.
func (o operatorKind) create(ctx context.Context, t testing.TB, k *Kube, ns, name string) metav1.OwnerReference {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(o.apiVersion)
	u.SetKind(o.kind)
	u.SetNamespace(ns)
	u.SetName(name)
	gomega.NewWithT(t).Eventually(func() error { return client.IgnoreAlreadyExists(k.Client.Create(ctx, u)) }).
		WithTimeout(30*time.Second).WithPolling(poll).Should(gomega.Succeed(), "creating %s %s/%s in %s", o.kind, ns, name, k.Name)
	return metav1.OwnerReference{APIVersion: o.apiVersion, Kind: o.kind, Name: name, UID: u.GetUID(), Controller: ptr.To(true)}
}

// pod returns a Pod in ns running image in container c0, controlled by owner when it is not nil
// (an operator's Pod), bare otherwise.
func pod(ns, name, image string, owner *metav1.OwnerReference) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       podTemplate(image).Spec,
	}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	return p
}

// isBackupOf says why image is not ci's backup (its tag, or pinned to its digest), or "".
func isBackupOf(image string, ci *v1alpha1.ClonedImage) string {
	if image == ci.Status.Backup || image == ci.Status.Backup+"@"+ci.Status.Digest {
		return ""
	}
	return fmt.Sprintf("image %s is not the backup %s (nor pinned to %s)", image, ci.Status.Backup, ci.Status.Digest)
}

// createRewritten creates the Pod mk returns until the API server gives it back pointing at
// ci's backup and pulling with the namespace's image-cloner-pull: the agent's cache may see a
// new ClonedImage, or the new namespace's pull Secret, a moment after the API server. Pods of
// earlier tries are deleted. It returns the Pod as created.
func createRewritten(ctx context.Context, t testing.TB, in FleetInput, k *Kube, ci *v1alpha1.ClonedImage, mk func() *corev1.Pod) *corev1.Pod {
	t.Helper()
	var p *corev1.Pod
	gomega.NewWithT(t).Eventually(func(g gomega.Gomega) {
		if p != nil {
			_ = k.Client.Delete(ctx, p)
		}
		p = mk()
		g.Expect(k.Client.Create(ctx, p)).To(gomega.Succeed())
		g.Expect(isBackupOf(p.Spec.Containers[0].Image, ci)).To(gomega.BeEmpty(), "Pod %s/%s in %s is rewritten at admission", p.Namespace, p.Name, k.Name)
		g.Expect(p.Spec.ImagePullSecrets).To(gomega.ContainElement(corev1.LocalObjectReference{Name: v1alpha1.NamespacePullSecretName}),
			"Pod %s/%s in %s pulls with the namespace's pull Secret", p.Namespace, p.Name, k.Name)
	}).WithTimeout(in.timeout()).WithPolling(time.Second).Should(gomega.Succeed())
	return p
}

// AnyOwnerPodsSpec: with REWRITE_MODE=auto in every member, Pods that no workload the agent
// patches owns are backed up and pointed at their backup at admission: (a) a bare Pod and
// (b) an operator's Pod, controlled by an instance of a custom resource (a CRD installed for
// the spec). For each, a first Pod admitted before any backup exists (its image is used by
// nothing else) leads to a Ready ClonedImage, and a second Pod created afterwards comes back
// from the create already pointing at the backup, with its original image in
// image-cloner.io/original-images. A probe (autoModeInForce) shows the agent really runs in
// auto mode (in workload mode the same Pods would be rewritten too), and a control in the
// first member, switched to workload mode, that the probe tells the modes apart. It restores
// each member's ConfigMap and deletes the CRDs when it ends.
func AnyOwnerPodsSpec(ctx context.Context, t *testing.T, in FleetInput) {
	g := gomega.NewWithT(t)
	bareRef, _ := pushImage(t, in, "bare")
	ownedRef, _ := pushImage(t, in, "owned")
	type member struct {
		ns    string
		owner metav1.OwnerReference
	}
	ms := map[string]member{}
	for _, m := range in.Members {
		useRewriteMode(ctx, t, in, m, config.RewriteAuto)
		op := installOperatorKind(ctx, t, m)
		ns := newNamespace(ctx, t, m)
		owner := op.create(ctx, t, m, ns, "db")
		ms[m.Name] = member{ns: ns, owner: owner}
		g.Expect(m.Client.Create(ctx, pod(ns, "bare-first", bareRef, nil))).To(gomega.Succeed())
		g.Expect(m.Client.Create(ctx, pod(ns, "owned-first", ownedRef, &owner))).To(gomega.Succeed())
	}
	for _, m := range in.Members {
		ns, owner := ms[m.Name].ns, ms[m.Name].owner
		for _, c := range []struct {
			what, ref string
			owner     *metav1.OwnerReference
		}{
			{"a bare Pod", bareRef, nil},
			{"a Pod of " + owner.Kind + " " + owner.Name, ownedRef, &owner},
		} {
			ci := waitReady(ctx, t, in, m, c.ref)
			p := createRewritten(ctx, t, in, m, ci, func() *corev1.Pod { return pod(ns, "second-"+randomSuffix(), c.ref, c.owner) })
			originals, err := workload.Originals(p)
			g.Expect(err).NotTo(gomega.HaveOccurred())
			g.Expect(originals).To(gomega.ContainElement(c.ref), "the original image of %s is kept", c.what)
			t.Logf("%s: %s %s/%s admitted as %s", m.Name, c.what, ns, p.Name, p.Spec.Containers[0].Image)
		}
		ds := autoModeInForce(ctx, t, in, m, ns, bareRef)
		if m != in.Members[0] {
			continue
		}
		// The control: with REWRITE_MODE=workload the probe's c0 is rewritten too, so the probe
		// tells the modes apart. The member goes back to auto, then as it was, when t ends.
		useRewriteMode(ctx, t, in, m, config.RewriteWorkload)
		ci := waitReady(ctx, t, in, m, bareRef)
		g.Eventually(func(g gomega.Gomega) {
			c0, _ := probeRewrite(ctx, g, m, ds, bareRef)
			g.Expect(c0).To(gomega.HavePrefix(ci.Status.Backup), "with REWRITE_MODE=workload the probe's c0 is rewritten")
		}).WithTimeout(in.timeout()).WithPolling(time.Second).Should(gomega.Succeed())
		t.Logf("%s: the control: with REWRITE_MODE=workload the probe's template container is rewritten too", m.Name)
	}
}

// autoModeInForce shows that k's agent runs REWRITE_MODE=auto, with a dry run: a Pod claimed
// by a DaemonSet (opted out, so its template keeps ref; placed on no node) with two
// containers of ref, c0 as the DaemonSet's template declares it and c1 not in the template
// (an injected sidecar), is admitted with c0 left to the workload patch and c1 pointed at the
// backup. REWRITE_MODE=workload would rewrite both (the control in AnyOwnerPodsSpec), and an
// agent not answering (failurePolicy Ignore) neither. ref must have a Ready backup in k. It
// returns the DaemonSet.
func autoModeInForce(ctx context.Context, t testing.TB, in FleetInput, k *Kube, ns, ref string) *appsv1.DaemonSet {
	t.Helper()
	ci := waitReady(ctx, t, in, k, ref)
	ds := daemonSet(ns, "probe-"+randomSuffix(), ref)
	ds.Labels = map[string]string{v1alpha1.IgnoreLabel: v1alpha1.IgnoreValue}
	ds.Spec.Template.Spec.NodeSelector = map[string]string{"e2e.image-cloner.io/no-such-node": "true"}
	g := gomega.NewWithT(t)
	g.Expect(k.Client.Create(ctx, ds)).To(gomega.Succeed())
	g.Expect(ds.Spec.Template.Spec.Containers[0].Image).To(gomega.Equal(ref), "the opted-out DaemonSet was rewritten")
	// Until the agent's cache has the DaemonSet, auto mode sees a Pod without a patched owner
	// and rewrites c0 too: retry.
	g.Eventually(func(g gomega.Gomega) {
		c0, c1 := probeRewrite(ctx, g, k, ds, ref)
		g.Expect(c1).To(gomega.HavePrefix(ci.Status.Backup), "the sidecar c1 of the DaemonSet's Pod is rewritten (is the agent answering?)")
		g.Expect(c0).To(gomega.Equal(ref), "c0, declared by the DaemonSet's template, is left to the workload patch in auto mode")
	}).WithTimeout(in.timeout()).WithPolling(time.Second).Should(gomega.Succeed(), "REWRITE_MODE=auto is in force in %s", k.Name)
	t.Logf("%s: REWRITE_MODE=auto in force: a DaemonSet's Pod keeps its template's container, its sidecar is rewritten", k.Name)
	return ds
}

// probeRewrite creates, as a dry run, a Pod of ds with containers c0 and c1 of ref, and
// returns their images as admitted.
func probeRewrite(ctx context.Context, g gomega.Gomega, k *Kube, ds *appsv1.DaemonSet, ref string) (c0, c1 string) {
	owner := metav1.OwnerReference{APIVersion: appsv1.SchemeGroupVersion.String(), Kind: "DaemonSet", Name: ds.Name, UID: ds.UID, Controller: ptr.To(true)}
	p := pod(ds.Namespace, ds.Name+"-probe", ref, &owner)
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "c1", Image: ref})
	g.Expect(k.Client.Create(ctx, p, client.DryRunAll)).To(gomega.Succeed())
	return p.Spec.Containers[0].Image, p.Spec.Containers[1].Image
}
