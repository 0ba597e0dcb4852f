package workload_test

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-cloner/image-cloner/pkg/workload"
)

// TestOriginals_malformedAnnotations gives the original-images annotation the values a person
// editing a workload by hand could leave there. None may crash Rewrite or Restore (the agent
// and the mutating webhook run them): a record that cannot be read stops the rewrite with an
// error naming the annotation and the workload, so no original image is lost.
func TestOriginals_malformedAnnotations(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		// err is the start of the error; "" means the value is read as the empty record.
		err string
	}{
		{name: "null", value: "null"},
		{name: "empty object", value: "{}"},
		{name: "not json", value: "{not json", err: "annotation image-cloner.io/original-images of ns/d is not a JSON object of strings"},
		{name: "array", value: `["nginx:1.25"]`, err: "annotation image-cloner.io/original-images of ns/d is not a JSON object of strings"},
		{name: "numbers", value: `{"containers/web":7}`, err: "annotation image-cloner.io/original-images of ns/d is not a JSON object of strings"},
		{name: "nested", value: `{"containers/web":{"image":"x"}}`, err: "annotation image-cloner.io/original-images of ns/d is not a JSON object of strings"},
		{name: "deeply nested", value: strings.Repeat("[", 100000), err: "annotation image-cloner.io/original-images of ns/d is not a JSON object of strings"},
		{name: "string", value: `"nginx"`, err: "annotation image-cloner.io/original-images of ns/d is not a JSON object of strings"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d",
				Annotations: map[string]string{workload.OriginalImagesAnnotation: tc.value}}}
			d.Spec.Template.Spec = spec()

			changed, err := workload.Rewrite(d, func(image string) (string, bool) { return "backup/" + image, true })
			if tc.err != "" {
				g.Expect(err).To(MatchError(HavePrefix(tc.err)))
				g.Expect(len(err.Error())).To(BeNumerically("<", 512))
				g.Expect(d.Spec.Template.Spec).To(Equal(spec()), "nothing rewritten")
				_, err = workload.Restore(d)
				g.Expect(err).To(MatchError(HavePrefix(tc.err)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(changed).To(HaveLen(4))
			n, err := workload.Restore(d)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(n).To(Equal(4))
			g.Expect(d.Spec.Template.Spec).To(Equal(spec()), "restored")
		})
	}
}
