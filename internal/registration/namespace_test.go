package registration_test

import (
	"testing"

	. "github.com/onsi/gomega"

	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// TestParse_agentNamespaceComesFromTheAnnotation: the agent's namespace in the member is what
// the registration says, in either convention, image-cloner-system without the annotation
// (every Cluster API Secret), and an annotation that is not a namespace name is the Secret's
// fault.
func TestParse_agentNamespaceComesFromTheAnnotation(t *testing.T) {
	for _, tc := range []struct {
		name       string
		conv       registration.Convention
		annotation *string
		want       string
		wantErr    string
	}{
		{name: "image-cloner Secret without annotation", conv: registration.Label, want: v1alpha1.DefaultNamespace},
		{name: "Cluster API Secret without annotation", conv: registration.ClusterAPI, want: v1alpha1.DefaultNamespace},
		{name: "image-cloner Secret, annotated", conv: registration.Label, annotation: ptr("team-a"), want: "team-a"},
		{name: "Cluster API Secret, annotated", conv: registration.ClusterAPI, annotation: ptr("team-b"), want: "team-b"},
		{name: "empty annotation", conv: registration.Label, annotation: ptr(""), wantErr: `annotation image-cloner.io/agent-namespace "" is not a namespace name`},
		{name: "not a label", conv: registration.Label, annotation: ptr("Team/A"), wantErr: `annotation image-cloner.io/agent-namespace "Team/A" is not a namespace name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			s := registration.NewSecret(tc.conv, "hub", "m1", write(t, validConfig(t)))
			if tc.annotation != nil {
				s.Annotations = map[string]string{registration.NamespaceAnnotation: *tc.annotation}
			}
			reg, err := registration.Parse(s)
			if tc.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(reg.Namespace).To(Equal(tc.want))
		})
	}
}

func ptr(s string) *string { return &s }
