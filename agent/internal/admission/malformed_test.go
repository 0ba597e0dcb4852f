package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/image-cloner/image-cloner/internal/backups"
	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// rawReq is a CREATE of a Deployment given as JSON, as the API server could send it.
func rawReq(raw string) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Kind: deploymentKind, Operation: admissionv1.Create, Namespace: "apps", Name: "web",
		Object: runtime.RawExtension{Raw: []byte(raw)},
	}}
}

// TestWebhooks_malformedWorkloads sends workloads with broken images and shapes to both
// webhooks in enforce mode. None may crash or lock the namespace: invalid image references
// are admitted with a warning that names the image and why (the kubelet cannot pull them
// either, and they cannot be backed up), shapes without containers are admitted, and JSON
// that does not decode is a 400 that says so.
func TestWebhooks_malformedWorkloads(t *testing.T) {
	long := "registry.example.com/" + strings.Repeat("a", 10000) + ":1"
	for _, tc := range []struct {
		name string
		req  admission.Request
		// warns are substrings of the validating webhook's warnings, in order.
		warns []string
		// code is the validating webhook's refusal code, 0 when it admits.
		code int32
		says string
	}{
		{name: "uppercase", req: req(t, admissionv1.Create, deploymentKind, deployment("NGINX:1.25"), nil),
			warns: []string{`image "NGINX:1.25" is not a valid image reference (repository must be lowercase)`}},
		{name: "spaces", req: req(t, admissionv1.Create, deploymentKind, deployment("nginx :1.25"), nil),
			warns: []string{`image "nginx :1.25" is not a valid image reference`}},
		{name: "homoglyph", req: req(t, admissionv1.Create, deploymentKind, deployment("ngіnx:1.25"), nil), // Cyrillic і
			warns: []string{`image "ngіnx:1.25" is not a valid image reference`}},
		{name: "right-to-left override", req: req(t, admissionv1.Create, deploymentKind, deployment("nginx:1.25\u202e"), nil),
			warns: []string{`image "nginx:1.25\u202e" is not a valid image reference`}},
		{name: "10k characters", req: req(t, admissionv1.Create, deploymentKind, deployment(long), nil),
			warns: []string{`aaaa"... is not a valid image reference (its repository path is 10000 characters long, the limit is 255)`}},
		{name: "empty image", req: req(t, admissionv1.Create, deploymentKind, deployment(""), nil)},
		{name: "invalid next to a missing backup", req: req(t, admissionv1.Create, deploymentKind, deployment("NGINX", "redis:7"), nil),
			code: http.StatusForbidden, says: `refused deployment apps/web: image "redis:7" has no backup yet`, warns: []string{`image "NGINX"`}},
		{name: "missing template", req: rawReq(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"apps"},"spec":{}}`)},
		{name: "no spec", req: rawReq(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"}}`)},
		{name: "null fields", req: rawReq(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":null,"spec":{"template":{"metadata":null,"spec":{"containers":null,"initContainers":[null],"imagePullSecrets":null}}}}`)},
		{name: "container image null", req: rawReq(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"template":{"spec":{"containers":[{"name":"a","image":null}]}}}}`)},
		{name: "not JSON", req: rawReq(`{"apiVersion":"apps/v1",`), code: http.StatusBadRequest, says: "unexpected end of JSON input"},
		{name: "image not a string", req: rawReq(`{"apiVersion":"apps/v1","kind":"Deployment","spec":{"template":{"spec":{"containers":[{"name":"a","image":7}]}}}}`),
			code: http.StatusBadRequest, says: "cannot unmarshal number"},
		{name: "another kind in the object", req: rawReq(`{"apiVersion":"v1","kind":"Pod","spec":{"containers":[{"name":"a","image":"redis:7"}]}}`),
			code: http.StatusBadRequest, says: "Pod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			v, m, _ := fixture(t, enforce())
			resp := v.Handle(context.Background(), tc.req)
			if tc.code == 0 {
				g.Expect(resp.Allowed).To(BeTrue(), "%+v", resp.Result)
			} else {
				g.Expect(resp.Allowed).To(BeFalse())
				g.Expect(resp.Result.Code).To(Equal(tc.code))
				g.Expect(resp.Result.Message).To(ContainSubstring(tc.says))
			}
			g.Expect(resp.Warnings).To(HaveLen(len(tc.warns)), "%q", resp.Warnings)
			for i, w := range tc.warns {
				g.Expect(resp.Warnings[i]).To(ContainSubstring(w))
				g.Expect(resp.Warnings[i]).To(ContainSubstring("fix the image"))
				g.Expect(resp.Warnings[i]).NotTo(ContainSubstring("\u202e"))
				g.Expect(len(resp.Warnings[i])).To(BeNumerically("<", 512))
			}

			mresp := m.Handle(context.Background(), tc.req)
			if tc.code == http.StatusBadRequest {
				g.Expect(mresp.Allowed).To(BeFalse())
				g.Expect(mresp.Result.Code).To(Equal(tc.code))
				g.Expect(mresp.Result.Message).To(ContainSubstring(tc.says))
				return
			}
			g.Expect(mresp.Allowed).To(BeTrue(), "%+v", mresp.Result)
			g.Expect(mresp.Patches).To(BeEmpty(), "nothing here has a Ready backup")
		})
	}
}

// TestWebhooks_hugeContainerLists sends 2000 containers, half on an image with a Ready
// backup: every one of those is rewritten, and each image without one is requested once.
func TestWebhooks_hugeContainerLists(t *testing.T) {
	g := NewWithT(t)
	const n = 2000
	d := deployment()
	for i := range n {
		img := "nginx:1.25"
		if i%2 == 1 {
			img = fmt.Sprintf("example.com/app-%d:1", i%50)
		}
		d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: img})
	}
	v, m, c := fixture(t, backups.Defaults(apiv1.DefaultNamespace))
	r := req(t, admissionv1.Create, deploymentKind, d, nil)

	resp := v.Handle(context.Background(), r)
	g.Expect(resp.Allowed).To(BeTrue())
	g.Expect(resp.Warnings).To(HaveLen(25), "one per distinct image without a backup")
	var list apiv1.ClonedImageList
	g.Expect(c.List(context.Background(), &list)).To(Succeed())
	g.Expect(list.Items).To(HaveLen(26))

	mresp := m.Handle(context.Background(), r)
	g.Expect(mresp.Allowed).To(BeTrue())
	images := 0
	for _, p := range mresp.Patches {
		if strings.HasSuffix(p.Path, "/image") {
			images++
		}
	}
	g.Expect(images).To(Equal(n / 2))
	patched, err := json.Marshal(mresp.Patches)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(patched)).NotTo(ContainSubstring("example.com/app-"), "images without a backup are left alone")
}
