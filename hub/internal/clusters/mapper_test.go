package clusters

import (
	"errors"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/image-cloner/image-cloner/internal/testenv"
)

// Every kind a member cache holds is mapped without discovery, with its scope: a kind added to
// CachedKinds but not to hubKinds would make every registration discover the whole API again.
func TestHubKinds_mapEveryCachedKind(t *testing.T) {
	g := NewWithT(t)
	for _, obj := range CachedKinds() {
		gvk, err := apiutil.GVKForObject(obj, testenv.Scheme())
		g.Expect(err).NotTo(HaveOccurred())
		m, err := hubKinds.RESTMapping(gvk.GroupKind(), gvk.Version)
		g.Expect(err).NotTo(HaveOccurred(), "%s is not in hubKinds", gvk)
		want := meta.RESTScopeNameNamespace
		if gvk.Kind == "ClonedImage" {
			want = meta.RESTScopeNameRoot
		}
		g.Expect(m.Scope.Name()).To(Equal(want), "%s", gvk)
	}
}

// fallbackMapper asks the discovering mapper only for what hubKinds does not know, builds it
// once, and passes on its errors.
func TestFallbackMapper_discoversOnlyWhatItDoesNotKnow(t *testing.T) {
	widget := schema.GroupKind{Group: "widgets.example.com", Kind: "Widget"}
	dyn := meta.NewDefaultRESTMapper([]schema.GroupVersion{{Group: widget.Group, Version: "v1"}})
	dyn.Add(widget.WithVersion("v1"), meta.RESTScopeNamespace)
	for _, tc := range []struct {
		name      string
		gk        schema.GroupKind
		dynamic   func() (meta.RESTMapper, error)
		wantBuilt int
		wantErr   bool
	}{
		{"a hub kind", schema.GroupKind{Group: "apps", Kind: "Deployment"}, func() (meta.RESTMapper, error) { return dyn, nil }, 0, false},
		{"another kind", widget, func() (meta.RESTMapper, error) { return dyn, nil }, 1, false},
		{"a kind nobody knows", schema.GroupKind{Group: "x.example.com", Kind: "Nothing"}, func() (meta.RESTMapper, error) { return dyn, nil }, 1, true},
		{"discovery fails", widget, func() (meta.RESTMapper, error) { return nil, errors.New("discovery: connection refused") }, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			built := 0
			f := &fallbackMapper{static: hubKinds, dynamic: func() (meta.RESTMapper, error) { built++; return tc.dynamic() }}
			for range 2 {
				m, err := f.RESTMapping(tc.gk)
				if tc.wantErr {
					g.Expect(err).To(HaveOccurred())
					continue
				}
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(m.GroupVersionKind.GroupKind()).To(Equal(tc.gk))
			}
			g.Expect(built).To(Equal(tc.wantBuilt), "the discovering mapper is built once, and only when needed")
		})
	}
}
