package imageref

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Like backup names, object names are a contract: a changed name orphans
// the ClonedImage objects already in member clusters.
func TestObjectName_isReadableAndHashed(t *testing.T) {
	tests := []struct {
		src, want string
	}{
		{"nginx:1.25", "docker.io-library-nginx-1.25-b07c1fa29c8dc936"},
		{"ghcr.io/org/app:v1", "ghcr.io-org-app-v1-dbab808d9fbc4eed"},
		{"localhost:5000/nginx", "localhost-5000-nginx-latest-a83c78dd8f89e58c"},
		{"quay.io/prometheus/node_exporter:v1.8.0", "quay.io-prometheus-node-exporter-v1.8.0-c61603c5b906e862"},
		{"nginx@" + dig256, "docker.io-library-nginx-sha256-0123456789ab-d50838d989e022db"},
		{"nginx:1.25@" + dig256, "docker.io-library-nginx-1.25-sha256-0123456789ab-cd015bb957f0713e"},
		{"[::1]:5000/app", "1-5000-app-latest-9620dbfe48f0c370"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			g := NewWithT(t)
			ref, err := Parse(tt.src)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ObjectName(ref)).To(Equal(tt.want))
		})
	}
}

func TestObjectName_isEqualForEquivalentInputs(t *testing.T) {
	groups := [][]string{
		{"nginx", "nginx:latest", "library/nginx", "docker.io/nginx", "docker.io/library/nginx:latest", "index.docker.io/library/nginx", "registry-1.docker.io/nginx:latest"},
		{"GHCR.IO/org/app:v1", "ghcr.io/org/app:v1"},
		{"nginx@" + dig256, "docker.io/library/nginx@" + dig256},
	}
	for _, group := range groups {
		t.Run(group[0], func(t *testing.T) {
			g := NewWithT(t)
			var names []string
			for _, s := range group {
				ref, err := Parse(s)
				g.Expect(err).NotTo(HaveOccurred())
				names = append(names, ObjectName(ref))
			}
			for _, name := range names {
				g.Expect(name).To(Equal(names[0]))
			}
		})
	}
}

func TestObjectName_isAValidDistinctNameForEverySource(t *testing.T) {
	g := NewWithT(t)
	corpus := append(injectivityCorpus(),
		// Sources whose readable parts are equal once lowercased, folded
		// and cut: only the hash tells them apart.
		"nginx:V1", "nginx:v1", "nginx:v_1", "nginx:v-1", "nginx:v--1", "nginx:v.1",
		"a/b.c", "a/b-c", "a.b/c", "a-b/c",
		"nginx:a@"+dig256, "nginx:a-sha256-0123456789ab", "nginx@"+dig512,
		"nginx:"+strings.Repeat("T", 128), "nginx:"+strings.Repeat("t", 128),
		strings.Repeat("a", 237), "ghcr.io/"+strings.Repeat("a", 247),
		"ghcr.io/"+strings.Repeat("a-", 123)+"a:"+strings.Repeat("_", 128)+"@"+dig512,
		"ghcr.io/"+strings.Repeat("a.", 110)+"a:x"+strings.Repeat("._-", 20)+"y",
		"ghcr.io/"+strings.Repeat("a.", 110)+"a:x"+strings.Repeat("._-", 20)+"z",
	)
	bySource := map[string]string{}
	for _, s := range corpus {
		ref, err := Parse(s)
		g.Expect(err).NotTo(HaveOccurred(), s)
		name := ObjectName(ref)
		g.Expect(validation.IsDNS1123Subdomain(name)).To(BeEmpty(), "ObjectName(%s) = %q", s, name)
		if prev, seen := bySource[name]; seen {
			g.Expect(prev).To(Equal(ref.String()), "%s and %s share object name %s", prev, ref, name)
		}
		bySource[name] = ref.String()
	}
}
