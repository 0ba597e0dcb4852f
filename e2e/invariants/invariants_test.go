package invariants_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/e2e/invariants"
	"github.com/image-cloner/image-cloner/internal/testenv"
	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/imageref"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// TestWatcher_reportsEachViolation builds, on a real kube-apiserver and a real registry, one
// state of each kind the watcher must catch (and one correct workload it must not flag), and
// asserts that Finish reports each of them: the watcher can fail.
func TestWatcher_reportsEachViolation(t *testing.T) {
	ctx := t.Context()
	cluster := testenv.StartCluster(t, testenv.ClusterOptions{Name: "member", CRDs: true})
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "backup", Auth: true})
	backupRegistry := reg.Host + "/backup"
	auth := &authn.Basic{Username: reg.Username, Password: reg.Password}
	opts := []remote.Option{remote.WithAuth(auth), remote.WithTransport(reg.Transport())}

	push := func(repoTag string) (v1.Image, name.Reference) {
		t.Helper()
		img, err := random.Image(1024, 2)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.ParseReference(backupRegistry+"/"+repoTag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, opts...); err != nil {
			t.Fatalf("pushing %s: %v", ref, err)
		}
		return img, ref
	}
	present, presentRef := push("present:1")
	presentDigest, _ := present.Digest()
	// partial: its manifest is there, one of its layers is not.
	partial, partialRef := push("partial:1")
	deleteBlob(t, partialRef.Context(), partial, auth, reg.Transport())

	w := invariants.Start(ctx, invariants.Input{
		Members:        []invariants.Member{{Name: "member", Config: cluster.Config}},
		BackupRegistry: backupRegistry,
		Backup:         invariants.Registry{Host: reg.Host, Auth: auth, Transport: reg.Transport()},
		Requests:       reg.Requests,
		Grace:          time.Second,
		Settle:         3 * time.Second,
		Logf:           t.Logf,
	})

	// A digest pushed twice after Start: two accepted manifest PUTs.
	_, twiceRef := push("twice:1")
	twice, err := remote.Image(twiceRef, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(twiceRef, twice, opts...); err != nil {
		t.Fatalf("pushing %s again: %v", twiceRef, err)
	}

	// A copy's digest tag (digest-sha256-<hex>) beside its tag is one copy, not two.
	_, anchoredRef := push("anchored:1")
	anchored, err := remote.Image(anchoredRef, opts...)
	if err != nil {
		t.Fatal(err)
	}
	anchoredDigest := digestOf(t, anchored)
	if err := remote.Put(anchoredRef.Context().Tag("digest-sha256-"+strings.TrimPrefix(anchoredDigest, "sha256:")), anchored, opts...); err != nil {
		t.Fatalf("tagging %s by digest: %v", anchoredRef, err)
	}

	// A manifest PUT the registry refuses landed nothing: not a copy.
	refusedPut(t, reg.Host, "backup/refused", auth, reg.Transport())

	ns := "invariants"
	if err := cluster.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	src := func(n string) string { return "registry.example.com/lib/" + n + ":1" }
	halfSource, err := imageref.Parse(src("half"))
	if err != nil {
		t.Fatal(err)
	}
	create := func(obj client.Object) {
		t.Helper()
		if err := cluster.Client.Create(ctx, obj); err != nil {
			t.Fatalf("creating %s: %v", obj.GetName(), err)
		}
	}
	// Correct: at a complete backup, original recorded. No violation may name it.
	create(patched(ns, "good", map[string]string{"web": presentRef.String()}, map[string]string{"containers/web": src("good")}))
	// (a) a backup whose manifest is absent, and one whose layer is missing.
	create(patched(ns, "absent", map[string]string{"web": backupRegistry + "/absent:1"}, map[string]string{"containers/web": src("absent")}))
	create(patched(ns, "partial", map[string]string{"web": partialRef.String()}, map[string]string{"containers/web": src("partial")}))
	// (b) half patched: "b" runs a source whose ClonedImage is Ready while "a" is at its backup.
	readyCI(ctx, t, cluster.Client, halfSource.String(), presentRef.String(), presentDigest.String(), apiv1.PhaseReady, "Copied")
	create(patched(ns, "half", map[string]string{"a": presentRef.String(), "b": src("half")}, map[string]string{"containers/a": src("other")}))
	// (b) at a backup with no original recorded, and an original recorded for a container
	// still at it.
	create(patched(ns, "unrecorded", map[string]string{"web": presentRef.String()}, nil))
	create(patched(ns, "overrecorded", map[string]string{"web": src("over")}, map[string]string{"containers/web": src("over")}))
	// (c) a ClonedImage seen, then deleted.
	lost := readyCI(ctx, t, cluster.Client, src("lost"), presentRef.String(), presentDigest.String(), apiv1.PhaseReady, "Copied")
	if err := testenv.WaitFor(ctx, 30*time.Second, func(context.Context) (bool, error) {
		return w.SeenClonedImage("member", lost.Name), nil
	}); err != nil {
		t.Fatalf("the watcher never saw ClonedImage %s: %v", lost.Name, err)
	}
	if err := cluster.Client.Delete(ctx, lost); err != nil {
		t.Fatal(err)
	}
	// (d) one still Cloning at the end, one Failed without a reason; one Failed with a reason is fine.
	readyCI(ctx, t, cluster.Client, src("stuck"), "", "", apiv1.PhaseCloning, "Cloning")
	readyCI(ctx, t, cluster.Client, src("mute"), "", "", apiv1.PhaseFailed, "")
	readyCI(ctx, t, cluster.Client, src("failed"), "", "", apiv1.PhaseFailed, "SourceNotFound")

	// Let the watcher see everything before Finish (it waits for settling only up to Settle).
	if err := testenv.WaitFor(ctx, 30*time.Second, func(context.Context) (bool, error) {
		return len(w.Violations()) >= 5, nil
	}); err != nil {
		t.Fatalf("violations so far: %v", w.Violations())
	}
	report, err := w.Finish(ctx)
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	for _, v := range report.Violations {
		t.Logf("reported: %s", v)
	}
	for _, want := range []struct{ kind, object string }{
		{invariants.IncompleteBackup, "Deployment invariants/absent"},
		{invariants.IncompleteBackup, "Deployment invariants/partial"},
		{invariants.HalfPatched, "Deployment invariants/half"},
		{invariants.AnnotationMismatch, "Deployment invariants/unrecorded"},
		{invariants.AnnotationMismatch, "Deployment invariants/overrecorded"},
		{invariants.LostClonedImage, "ClonedImage " + lost.Name},
		{invariants.NotSettled, "ClonedImage " + ciName(src("stuck"))},
		{invariants.NotSettled, "ClonedImage " + ciName(src("mute"))},
		{invariants.CopiedTwice, "backup/twice@"},
	} {
		found := false
		for _, v := range report.Violations {
			found = found || (v.Kind == want.kind && strings.HasPrefix(v.Object, want.object))
		}
		if !found {
			t.Errorf("no %s violation reported for %s", want.kind, want.object)
		}
	}
	for _, v := range report.Violations {
		for _, innocent := range []string{"invariants/good", ciName(src("failed")), ciName(src("half")), "backup/present@", "backup/anchored@"} {
			if strings.Contains(v.Object, innocent) {
				t.Errorf("violation reported for a correct object: %s", v)
			}
		}
	}
	if n := report.Copies[twiceRef.Context().RepositoryStr()+"@"+digestOf(t, twice)]; n != 2 {
		t.Errorf("copies of twice:1 = %d, want 2 (copies: %v)", n, report.Copies)
	}
	if n := report.Copies[anchoredRef.Context().RepositoryStr()+"@"+anchoredDigest]; n != 1 {
		t.Errorf("copies of anchored:1 = %d, want 1: its digest tag is part of the copy (copies: %v)", n, report.Copies)
	}
	for k := range report.Copies {
		if strings.Contains(k, "backup/refused") {
			t.Errorf("a refused manifest PUT counted as a copy: %s", k)
		}
	}
	if report.DigestsVerified == 0 || report.BackupsChecked < 4 {
		t.Errorf("checked %d backups and verified %d digests, want at least 4 and 1", report.BackupsChecked, report.DigestsVerified)
	}
	if report.Err() == nil {
		t.Errorf("Report.Err() is nil with %d violations", len(report.Violations))
	}
}

// patched returns a Deployment whose containers run images (container name -> image) with
// originals as its original-images annotation (none when nil).
func patched(ns, name string, images, originals map[string]string) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}}},
		},
	}
	for _, c := range []string{"a", "b", "web"} {
		if img, ok := images[c]; ok {
			d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: c, Image: img})
		}
	}
	if originals != nil {
		parts := make([]string, 0, len(originals))
		for k, v := range originals {
			parts = append(parts, fmt.Sprintf("%q:%q", k, v))
		}
		d.Annotations = map[string]string{workload.OriginalImagesAnnotation: "{" + strings.Join(parts, ",") + "}"}
	}
	return d
}

func ciName(source string) string {
	ref, err := imageref.Parse(source)
	if err != nil {
		panic(err)
	}
	return imageref.ObjectName(ref)
}

// readyCI creates a ClonedImage for source with the given status.
func readyCI(ctx context.Context, t *testing.T, c client.Client, source, backup, digest string, phase apiv1.Phase, reason string) *apiv1.ClonedImage {
	t.Helper()
	ref, err := imageref.Parse(source)
	if err != nil {
		t.Fatal(err)
	}
	ci := &apiv1.ClonedImage{ObjectMeta: metav1.ObjectMeta{Name: imageref.ObjectName(ref)}, Spec: apiv1.ClonedImageSpec{Source: ref.String()}}
	if err := c.Create(ctx, ci); err != nil {
		t.Fatalf("creating ClonedImage for %s: %v", source, err)
	}
	ci.Status = apiv1.ClonedImageStatus{Backup: backup, Digest: digest, Phase: phase, Conditions: []metav1.Condition{{
		Type: apiv1.ReadyCondition, Status: metav1.ConditionFalse, Reason: reason, Message: "test",
		LastTransitionTime: metav1.Now(),
	}}}
	if phase == apiv1.PhaseReady {
		ci.Status.Conditions[0].Status = metav1.ConditionTrue
	}
	if reason == "" {
		ci.Status.Conditions = nil
	}
	if err := c.Status().Update(ctx, ci); err != nil {
		t.Fatalf("setting the status of ClonedImage %s: %v", ci.Name, err)
	}
	return ci
}

func digestOf(t *testing.T, img v1.Image) string {
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// deleteBlob deletes img's first layer from repo in the registry (its storage has delete
// enabled), leaving the manifest in place.
func deleteBlob(t *testing.T, repo name.Repository, img v1.Image, auth authn.Authenticator, tr http.RoundTripper) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	rt, err := transport.NewWithContext(t.Context(), repo.Registry, auth, tr, []string{repo.Scope(transport.DeleteScope)})
	if err != nil {
		t.Fatal(err)
	}
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", repo.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), d)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodDelete, u, nil)
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE %s: %s", u, resp.Status)
	}
}

// refusedPut PUTs a manifest that does not parse to repo:1, which the registry refuses.
func refusedPut(t *testing.T, host, repo string, auth authn.Authenticator, tr http.RoundTripper) {
	t.Helper()
	r, err := name.NewRepository(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := transport.NewWithContext(t.Context(), r.Registry, auth, tr, []string{r.Scope(transport.PushScope)})
	if err != nil {
		t.Fatal(err)
	}
	u := fmt.Sprintf("%s://%s/v2/%s/manifests/1", r.Scheme(), r.RegistryStr(), r.RepositoryStr())
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut, u, strings.NewReader(`{"schemaVersion": 2, "config": 1}`))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Fatalf("PUT %s of a broken manifest: %s, want a refusal", u, resp.Status)
	}
}
