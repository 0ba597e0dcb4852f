package mirror

import (
	"net/url"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	. "github.com/onsi/gomega"
)

func TestSideOfRequest_readsHostThenRepository(t *testing.T) {
	src := name.MustParseReference("quay.io/org/app:1")
	dst := name.MustParseReference("quay.io/acme/quay.io_org_app:1")
	hub := name.MustParseReference("docker.io/library/nginx:1")
	hubBackup := name.MustParseReference("docker.io/acme/docker.io_library_nginx:1")
	other := name.MustParseReference("ghcr.io/acme/quay.io_org_app:1")
	for _, tc := range []struct {
		name     string
		url      string
		src, dst name.Reference
		want     Side
	}{
		{"backup manifest on a shared host", "https://quay.io/v2/acme/quay.io_org_app/manifests/1", src, dst, SideDestination},
		{"source blob on a shared host", "https://quay.io/v2/org/app/blobs/sha256:ab", src, dst, SideSource},
		{"backup upload on a shared host", "https://quay.io/v2/acme/quay.io_org_app/blobs/uploads/abc", src, dst, SideDestination},
		{"token for the backup on a shared host", "https://quay.io/v2/auth?scope=repository:acme/quay.io_org_app:push,pull&service=quay.io", src, dst, SideDestination},
		{"token for the source on a shared host", "https://quay.io/v2/auth?scope=repository:org/app:pull", src, dst, SideSource},
		{"ping on a shared host tells nothing", "https://quay.io/v2/", src, dst, SideUnknown},
		{"a repository of neither", "https://quay.io/v2/else/manifests/1", src, dst, SideUnknown},
		{"Docker Hub backup through index.docker.io", "https://index.docker.io/v2/acme/docker.io_library_nginx/manifests/1", hub, hubBackup, SideDestination},
		{"Docker Hub source through registry-1", "https://registry-1.docker.io/v2/library/nginx/blobs/sha256:ab", hub, hubBackup, SideSource},
		{"Docker Hub token service", "https://auth.docker.io/token?scope=repository:acme/docker.io_library_nginx:push,pull", hub, hubBackup, SideDestination},
		{"distinct hosts: the host decides", "https://ghcr.io/v2/org/app/manifests/1", src, other, SideDestination},
		{"distinct hosts: source host", "https://quay.io/v2/acme/quay.io_org_app/manifests/1", src, other, SideSource},
		{"a repository name in a path word", "https://quay.io/v2/acme/quay.io_org_app/blobs/uploads/manifests", src, dst, SideDestination},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			NewWithT(t).Expect(sideOfRequest(u, tc.src, tc.dst)).To(Equal(tc.want))
		})
	}
	NewWithT(t).Expect(sideOfRequest(nil, src, dst)).To(Equal(SideUnknown))
}
