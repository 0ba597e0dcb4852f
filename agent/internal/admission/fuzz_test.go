package admission

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/image-cloner/image-cloner/internal/backups"
	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// fuzzKinds are the kinds the webhooks handle, and one they do not.
var fuzzKinds = []metav1.GroupVersionKind{
	{Group: "apps", Version: "v1", Kind: "Deployment"},
	{Group: "apps", Version: "v1", Kind: "DaemonSet"},
	{Group: "apps", Version: "v1", Kind: "StatefulSet"},
	{Group: "batch", Version: "v1", Kind: "Job"},
	{Group: "batch", Version: "v1", Kind: "CronJob"},
	{Version: "v1", Kind: "Pod"},
	{Version: "v1", Kind: "ConfigMap"},
}

var fuzzOps = []admissionv1.Operation{admissionv1.Create, admissionv1.Update, admissionv1.Delete, admissionv1.Connect}

// fuzzSeeds adds, for each kind, a valid object whose first container's image is "$IMAGE"
// (replaced by the fuzzed image), and a few broken ones.
func fuzzSeeds(f *testing.F) {
	templ := `{"metadata":{"name":"w","namespace":"apps"},"spec":{"containers":[{"name":"a","image":"$IMAGE"}],"initContainers":[{"name":"i","image":"nginx:1.25"}]}}`
	pod := `{"apiVersion":"v1","kind":"Pod",` + templ[1:]
	tmpl := `{"template":` + templ + `}`
	objs := []string{
		`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"w","namespace":"apps"},"spec":` + tmpl + `}`,
		`{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"w","namespace":"apps"},"spec":` + tmpl + `}`,
		`{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"w","namespace":"apps"},"spec":` + tmpl + `}`,
		`{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"w","namespace":"apps"},"spec":` + tmpl + `}`,
		`{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"w","namespace":"apps"},"spec":{"schedule":"* * * * *","jobTemplate":{"spec":` + tmpl + `}}}`,
		pod,
	}
	for i, o := range objs {
		for _, img := range []string{"nginx:1.25", "redis:7", "NGINX", ""} {
			f.Add(uint8(i), uint8(0), "apps", []byte(o), []byte(nil), img)
		}
		f.Add(uint8(i), uint8(1), "apps", []byte(o), []byte(strings.Replace(o, "$IMAGE", "busybox", 1)), "nginx:1.25")
	}
	f.Add(uint8(0), uint8(0), "apps", []byte(`{"spec":{"template":null}}`), []byte(nil), "")
	f.Add(uint8(0), uint8(0), "apps", []byte(`{"spec":{"template":{"spec":{"containers":null}}}}`), []byte(nil), "")
	f.Add(uint8(0), uint8(0), "apps", []byte(`{"kind":"Pod","apiVersion":"v1"}`), []byte(nil), "")
	f.Add(uint8(3), uint8(1), "", []byte(`not json`), []byte(`{`), "")
	f.Add(uint8(5), uint8(0), "kube-system", []byte(pod), []byte(nil), "nginx:1.25")
	f.Add(uint8(6), uint8(0), "apps", []byte(`{}`), []byte(nil), "")
}

func fuzzRequest(kind, op uint8, namespace string, object, old []byte, image string) admission.Request {
	quoted := strconv.Quote(image)
	if b, err := json.Marshal(image); err == nil {
		quoted = string(b)
	}
	sub := func(b []byte) []byte {
		return []byte(strings.ReplaceAll(string(b), `"$IMAGE"`, quoted))
	}
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "1",
		Kind:      fuzzKinds[int(kind)%len(fuzzKinds)],
		Operation: fuzzOps[int(op)%len(fuzzOps)],
		Namespace: namespace,
		Name:      "w",
		Object:    runtime.RawExtension{Raw: sub(object)},
		OldObject: runtime.RawExtension{Raw: sub(old)},
	}}
}

// checkResponse holds for both webhooks: allowed, or refused with a message; a 400 only for
// an object that does not decode, and never a 500.
func checkResponse(t *testing.T, req admission.Request, resp admission.Response) {
	t.Helper()
	if resp.Allowed {
		return
	}
	if resp.Result == nil || strings.TrimSpace(resp.Result.Message) == "" {
		t.Fatalf("%s %s refused without a message: %+v", req.Operation, req.Kind.Kind, resp.Result)
	}
	switch resp.Result.Code {
	case http.StatusForbidden:
	case http.StatusBadRequest:
		if obj := newObject(req); obj != nil && json.Unmarshal(req.Object.Raw, obj) == nil && kindMatches(req) {
			t.Fatalf("%s %s: 400 (%s) for JSON that decodes", req.Operation, req.Kind.Kind, resp.Result.Message)
		}
	default:
		t.Fatalf("%s %s refused with code %d: %s", req.Operation, req.Kind.Kind, resp.Result.Code, resp.Result.Message)
	}
}

// kindMatches reports whether the object's own apiVersion and kind, when set, are the request's.
func kindMatches(req admission.Request) bool {
	var tm metav1.TypeMeta
	if json.Unmarshal(req.Object.Raw, &tm) != nil {
		return false
	}
	gv := req.Kind.Version
	if req.Kind.Group != "" {
		gv = req.Kind.Group + "/" + gv
	}
	return (tm.APIVersion == "" || tm.APIVersion == gv) && (tm.Kind == "" || tm.Kind == req.Kind.Kind)
}

// Run with: go test -run='^$' -fuzz='^FuzzValidate$' -fuzztime=60s ./agent/internal/admission/
func FuzzValidate(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, kind, op uint8, namespace string, object, old []byte, image string) {
		s := backups.Defaults(apiv1.DefaultNamespace)
		if op&0x10 != 0 {
			s = enforce()
		}
		v, _, _ := fixture(t, s)
		req := fuzzRequest(kind, op, namespace, object, old, image)
		resp := v.Handle(context.Background(), req)
		checkResponse(t, req, resp)
		if !resp.Allowed && resp.Result.Code == http.StatusForbidden && !s.Enforcing() {
			t.Fatalf("warn mode denied %s: %s", req.Kind.Kind, resp.Result.Message)
		}
		if len(resp.Patches) > 0 {
			t.Fatalf("the validating webhook patched: %v", resp.Patches)
		}
	})
}

// imagePath is every path a mutation may touch: images, pull secrets and image-cloner's
// annotations.
var imagePath = regexp.MustCompile(`^(/spec(/template/spec|/jobTemplate/spec/template/spec)?/(initContainers|containers|ephemeralContainers)/\d+/image|/spec(/template/spec|/jobTemplate/spec/template/spec)?/imagePullSecrets(/.*)?|/metadata/annotations(/image-cloner.io~1(original-images|added-pull-secret))?)$`)

// Run with: go test -run='^$' -fuzz='^FuzzMutate$' -fuzztime=60s ./agent/internal/admission/
//
// The mutating webhook's patches apply cleanly to the object as sent, and change nothing but
// images (to their backups), pull secrets and image-cloner's annotations. For an object the
// API server could have sent (its JSON is what its type serializes to), every patch path is
// one of those.
func FuzzMutate(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, kind, op uint8, namespace string, object, old []byte, image string) {
		s := backups.Defaults(apiv1.DefaultNamespace)
		switch {
		case op&0x10 != 0:
			s.RewriteMode = backups.RewritePod
		case op&0x40 != 0:
			// Pods' ownerReferences in the fuzzed JSON lead to the owner lookup.
			s.RewriteMode = backups.RewriteAuto
		}
		_, m, c := fixture(t, s)
		if op&0x20 != 0 {
			secret := &corev1.Secret{}
			secret.Namespace, secret.Name = namespace, apiv1.NamespacePullSecretName
			if err := c.Create(context.Background(), secret); err != nil {
				return
			}
		}
		req := fuzzRequest(kind, op, namespace, object, old, image)
		resp := m.Handle(context.Background(), req)
		checkResponse(t, req, resp)
		if len(resp.Patches) == 0 {
			return
		}
		if !resp.Allowed {
			t.Fatalf("patches on a refusal")
		}
		patchJSON, err := json.Marshal(resp.Patches)
		if err != nil {
			t.Fatal(err)
		}
		patch, err := jsonpatch.DecodePatch(patchJSON)
		if err != nil {
			t.Fatalf("patch does not decode: %v", err)
		}
		patched, err := patch.Apply(req.Object.Raw)
		if err != nil {
			t.Fatalf("patch %s does not apply to %s: %v", patchJSON, req.Object.Raw, err)
		}
		before, after := newObject(req), newObject(req)
		if err := json.Unmarshal(req.Object.Raw, before); err != nil {
			t.Fatalf("patched an object that does not decode: %v", err)
		}
		if err := json.Unmarshal(patched, after); err != nil {
			t.Fatalf("patched object does not decode: %v", err)
		}
		for _, r := range changedImages(t, before, after) {
			if !strings.HasPrefix(r, "backup.example.com/acme/") {
				t.Fatalf("image rewritten to %q, not a backup", r)
			}
		}
		blank(t, before)
		blank(t, after)
		if !equality.Semantic.DeepEqual(before, after) {
			t.Fatalf("mutation changed more than images and pull secrets:\nbefore %+v\nafter  %+v", before, after)
		}
		if canonical(t, req) {
			for _, p := range resp.Patches {
				if !imagePath.MatchString(p.Path) {
					t.Fatalf("patch touches %s (%s)", p.Path, patchJSON)
				}
			}
		}
	})
}

// changedImages returns the images of after that differ from before's, container by container.
func changedImages(t *testing.T, before, after client.Object) []string {
	t.Helper()
	b, a := workload.Refs(mustSpec(t, before)), workload.Refs(mustSpec(t, after))
	if len(a) != len(b) {
		t.Fatalf("mutation changed the containers: %d before, %d after", len(b), len(a))
	}
	var changed []string
	for i := range a {
		if a[i].List != b[i].List || a[i].Container != b[i].Container {
			t.Fatalf("mutation reordered containers: %v, %v", b[i], a[i])
		}
		if a[i].Image != b[i].Image {
			changed = append(changed, a[i].Image)
		}
	}
	return changed
}

func mustSpec(t *testing.T, obj client.Object) *corev1.PodSpec {
	t.Helper()
	spec, err := workload.PodSpec(obj)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// blank clears what the mutator may change.
func blank(t *testing.T, obj client.Object) {
	spec := mustSpec(t, obj)
	for i := range spec.InitContainers {
		spec.InitContainers[i].Image = ""
	}
	for i := range spec.Containers {
		spec.Containers[i].Image = ""
	}
	for i := range spec.EphemeralContainers {
		spec.EphemeralContainers[i].Image = ""
	}
	spec.ImagePullSecrets = nil
	ann := obj.GetAnnotations()
	delete(ann, workload.OriginalImagesAnnotation)
	delete(ann, backups.AddedPullSecretAnnotation)
	if len(ann) == 0 {
		ann = nil
	}
	obj.SetAnnotations(ann)
}

// canonical reports whether the request's object is exactly what its type serializes to, as
// an object the API server sends is.
func canonical(t *testing.T, req admission.Request) bool {
	obj := newObject(req)
	if json.Unmarshal(req.Object.Raw, obj) != nil {
		return false
	}
	again, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var x, y any
	if json.Unmarshal(req.Object.Raw, &x) != nil || json.Unmarshal(again, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
