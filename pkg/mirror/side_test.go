package mirror_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	. "github.com/onsi/gomega"

	"github.com/image-cloner/image-cloner/pkg/mirror"
	"github.com/image-cloner/image-cloner/pkg/mirror/mirrortest"
)

// dockerHubTo sends every request for Docker Hub's hosts to the local registry at host, over
// plain HTTP, leaving the request the caller made (and the errors it gets) unchanged.
type dockerHubTo struct {
	host string
	next http.RoundTripper
}

func (d dockerHubTo) RoundTrip(r *http.Request) (*http.Response, error) {
	switch r.URL.Host {
	case "index.docker.io", "registry-1.docker.io", "docker.io":
		r = r.Clone(r.Context())
		r.URL.Scheme, r.URL.Host, r.Host = "http", d.host, d.host
	}
	return d.next.RoundTrip(r)
}

// Source and backup on one registry host is ordinary (quay.io/org/app backed up under
// quay.io/acme, Docker Hub images under docker.io/acme): the side of a failure must come from
// the request, not the host.
func TestSideOf_namesTheEndThatFailedOnASharedHost(t *testing.T) {
	const (
		srcRepo = "upstream/app"
		dstRepo = "backup/upstream_app"
	)
	denied := `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`
	for _, tc := range []struct {
		name      string
		dockerHub bool // both ends on docker.io, whose requests go to index.docker.io
		missing   bool // the source tag does not exist
		fault     mirrortest.Fault
		kind      mirror.Kind
		side      mirror.Side
	}{
		{name: "source tag missing", missing: true, kind: mirror.KindNotFound, side: mirror.SideSource},
		{name: "source manifest GET fails", kind: mirror.KindUnreachable, side: mirror.SideSource,
			fault: mirrortest.Fault{Method: http.MethodGet, Kind: mirrortest.KindManifest, Repository: srcRepo, Status: 503}},
		{name: "source blob gone while pushing", kind: mirror.KindNotFound, side: mirror.SideSource,
			fault: mirrortest.Fault{Method: http.MethodGet, Kind: mirrortest.KindBlob, Repository: srcRepo, Status: 404,
				Body: `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`}},
		{name: "backup refuses the manifest", kind: mirror.KindNotFound, side: mirror.SideDestination,
			fault: mirrortest.Fault{Method: http.MethodPut, Kind: mirrortest.KindManifest, Repository: dstRepo, Status: 404,
				Body: `{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}`}},
		{name: "backup upload fails", kind: mirror.KindUnreachable, side: mirror.SideDestination,
			fault: mirrortest.Fault{Method: http.MethodPost, Kind: mirrortest.KindUpload, Repository: dstRepo, Status: 500}},
		{name: "Docker Hub: backup denies the push", dockerHub: true, kind: mirror.KindUnauthorized, side: mirror.SideDestination,
			fault: mirrortest.Fault{Method: http.MethodPost, Kind: mirrortest.KindUpload, Repository: "acme/docker.io_library_app", Status: 403, Body: denied}},
		{name: "Docker Hub: source blob gone", dockerHub: true, kind: mirror.KindNotFound, side: mirror.SideSource,
			fault: mirrortest.Fault{Method: http.MethodGet, Kind: mirrortest.KindBlob, Repository: "library/app", Status: 404,
				Body: `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			e := newEnv(t)
			srv := e.src // one registry holds both ends
			var src, dst name.Reference
			opts := []mirror.Option{}
			if tc.dockerHub {
				pushTo(t, srv.ref(t, "library/app:1"), randomImage(t, 2))
				src = name.MustParseReference("docker.io/library/app:1")
				dst = name.MustParseReference("docker.io/acme/docker.io_library_app:1")
				opts = append(opts, mirror.WithTransport(dockerHubTo{host: srv.host, next: e.rec}))
			} else {
				pushTo(t, srv.ref(t, srcRepo+":1"), randomImage(t, 2))
				src = srv.ref(t, srcRepo+":1")
				if tc.missing {
					src = srv.ref(t, srcRepo+":2")
				}
				dst = srv.ref(t, dstRepo+":1")
			}
			if tc.fault.Method != "" {
				srv.proxy.Add(tc.fault)
			}
			m := e.mirror(opts...)

			_, err := m.Copy(ctxT(t), src, dst)

			g.Expect(err).To(HaveOccurred())
			g.Expect(mirror.Classify(err)).To(Equal(tc.kind), "%v", err)
			g.Expect(mirror.SideOf(err)).To(Equal(tc.side), "%v", err)
			if tc.side == mirror.SideDestination {
				g.Expect(err.Error()).NotTo(ContainSubstring("does not exist upstream"))
			} else if tc.kind == mirror.KindNotFound {
				g.Expect(err.Error()).To(ContainSubstring("does not exist upstream"))
			}
		})
	}
}

func TestSideOf_ofCallsThatTalkToOneEnd(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	m := e.mirror()

	_, err := m.Resolve(ctxT(t), e.src.ref(t, "library/missing:1"))
	g.Expect(mirror.SideOf(err)).To(Equal(mirror.SideSource), "%v", err)

	e.dst.proxy.Add(mirrortest.Fault{Method: http.MethodHead, Kind: mirrortest.KindManifest, Status: 503})
	digest, err := randomImage(t, 1).Digest()
	g.Expect(err).NotTo(HaveOccurred())
	_, err = m.Present(ctxT(t), e.dst.ref(t, "backup/app:1"), digest)
	g.Expect(mirror.SideOf(err)).To(Equal(mirror.SideDestination), "%v", err)

	g.Expect(mirror.SideOf(nil)).To(Equal(mirror.SideUnknown))
	g.Expect(mirror.SideOf(&mirror.DigestMismatchError{})).To(Equal(mirror.SideDestination))
	g.Expect(mirror.SideOf(&mirror.Schema1Error{})).To(Equal(mirror.SideDestination))
	g.Expect(mirror.SideOf(ctxT(t).Err())).To(Equal(mirror.SideUnknown))
	g.Expect(strings.Join([]string{mirror.SideSource.String(), mirror.SideDestination.String(), mirror.SideUnknown.String()}, ",")).
		To(Equal("Source,Destination,Unknown"))
}
