package imageref

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

const (
	hex64  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	dig256 = "sha256:" + hex64
	dig512 = "sha512:" + hex64 + hex64
)

func TestParse_acceptsWhatAPodSpecCanHold(t *testing.T) {
	tests := []struct {
		in   string
		want Reference
	}{
		{"nginx", Reference{"docker.io", "library/nginx", "latest", ""}},
		{"nginx:1.25", Reference{"docker.io", "library/nginx", "1.25", ""}},
		{"library/nginx", Reference{"docker.io", "library/nginx", "latest", ""}},
		{"docker.io/nginx", Reference{"docker.io", "library/nginx", "latest", ""}},
		{"docker.io/library/nginx:latest", Reference{"docker.io", "library/nginx", "latest", ""}},
		{"index.docker.io/library/nginx", Reference{"docker.io", "library/nginx", "latest", ""}},
		{"registry-1.docker.io/nginx:1.25", Reference{"docker.io", "library/nginx", "1.25", ""}},
		{"bitnami/nginx", Reference{"docker.io", "bitnami/nginx", "latest", ""}},
		{"ghcr.io/org/app:tag", Reference{"ghcr.io", "org/app", "tag", ""}},
		{"GHCR.io/org/app:Tag", Reference{"ghcr.io", "org/app", "Tag", ""}},
		{"ghcr.io/nginx", Reference{"ghcr.io", "nginx", "latest", ""}},
		{"localhost:5000/app", Reference{"localhost:5000", "app", "latest", ""}},
		{"localhost/app", Reference{"localhost", "app", "latest", ""}},
		// Without a '/', "localhost:5000" is the Docker Hub image
		// "localhost" tagged "5000", as docker reads it.
		{"localhost:5000", Reference{"docker.io", "library/localhost", "5000", ""}},
		{"localhost", Reference{"docker.io", "library/localhost", "latest", ""}},
		{"host.example:5000/a/b/c:tag", Reference{"host.example:5000", "a/b/c", "tag", ""}},
		{"10.0.0.1:5000/a", Reference{"10.0.0.1:5000", "a", "latest", ""}},
		{"[::1]:5000/app", Reference{"[::1]:5000", "app", "latest", ""}},
		{"[FE80::1]/app:v1", Reference{"[fe80::1]", "app", "v1", ""}},
		{"a-5000/x", Reference{"docker.io", "a-5000/x", "latest", ""}},
		{"a:5000/x", Reference{"a:5000", "x", "latest", ""}},
		{"a_b/c", Reference{"docker.io", "a_b/c", "latest", ""}},
		{"a__b/c---d.e", Reference{"docker.io", "a__b/c---d.e", "latest", ""}},
		{"registry.k8s.io/pause:3.9", Reference{"registry.k8s.io", "pause", "3.9", ""}},
		{"nginx@" + dig256, Reference{"docker.io", "library/nginx", "", dig256}},
		{"nginx:1.25@" + dig256, Reference{"docker.io", "library/nginx", "1.25", dig256}},
		{"quay.io/a/b@" + dig512, Reference{"quay.io", "a/b", "", dig512}},
		{"nginx:_x" + strings.Repeat("a", 126), Reference{"docker.io", "library/nginx", "_x" + strings.Repeat("a", 126), ""}},
		// The limit is on the canonical name, registry included.
		{strings.Repeat("a", 255-len("library/")), Reference{"docker.io", "library/" + strings.Repeat("a", 247), "latest", ""}},
		// distribution limits the path, not host plus path; an upper-case first component is
		// a host, lowercased here.
		{"ghcr.io/" + strings.Repeat("a", 255), Reference{"ghcr.io", strings.Repeat("a", 255), "latest", ""}},
		{"LOCALDOMAIN/fooo", Reference{"LOCALDOMAIN", "fooo", "latest", ""}},
		{"Docker/docker:1", Reference{"Docker", "docker", "1", ""}},
		{"Quay.IO/app", Reference{"quay.io", "app", "latest", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			g := NewWithT(t)
			got, err := Parse(tt.in)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tt.want))

			again, err := Parse(got.String())
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(again).To(Equal(got), "String() must re-parse to the same reference")
		})
	}
}

func TestParse_rejectsWithTheInputAndAReason(t *testing.T) {
	tests := []struct {
		in     string
		reason string
	}{
		{"", "reference is empty"},
		{"Nginx", "repository must be lowercase"},
		{"foo/Bar", "repository must be lowercase"},
		{"Foo/Bar", "repository must be lowercase"},
		{"ghcr.io/Org/app", "repository must be lowercase"},
		{" nginx", "whitespace"},
		{"nginx ", "whitespace"},
		{"ngi nx", "whitespace"},
		{"nginx\n", "whitespace"},
		{"nginx\x00", "control characters"},
		{"nginé", "ASCII"},
		{hex64, "image ID"},
		{"nginx:", "tag is empty"},
		{"nginx:-1", "tag must match"},
		{"nginx:.1", "tag must match"},
		{"nginx:a+b", "tag must match"},
		{"nginx:" + strings.Repeat("a", 129), "tag must match"},
		{"nginx@", "digest must be"},
		{"nginx@sha256", "digest must be"},
		{"nginx@sha256:abc", "64 hex characters"},
		{"nginx@sha256:" + strings.ToUpper(hex64), "lowercase hex"},
		{"nginx@sha256:" + hex64[:63] + "g", "lowercase hex"},
		{"nginx@md5:" + hex64[:32], "sha256 or sha512"},
		{"nginx@sha512:" + hex64, "128 hex characters"},
		{"nginx@" + dig256 + "@" + dig256, "hex"},
		{":tag", "repository is empty"},
		{"@" + dig256, "repository is empty"},
		{"ghcr.io/", "repository is empty"},
		{"/nginx", "empty path component"},
		{"ghcr.io//nginx", "empty path component"},
		{"ghcr.io/a/", "empty path component"},
		{"a/-b", `path component "-b"`},
		{"a/b-", `path component "b-"`},
		{"a/b___c", `path component "b___c"`},
		{"a/b..c", `path component "b..c"`},
		{"a/b._c", `path component "b._c"`},
		{"-host.io/a", `registry "-host.io"`},
		{"host..io/a", `registry "host..io"`},
		{"host.io:/a", `registry "host.io:"`},
		{"host.io:50a/a", `registry "host.io:50a"`},
		{"[::1/a", `registry "[::1"`},
		{"[::g]/a", `registry "[::g]"`},
		{"[]:5000/a", `registry "[]:5000"`},
		{"host_name.io/a", `registry "host_name.io"`},
		{strings.Repeat("a", 256-len("library/")), "the limit is 255"},
		{"ghcr.io/" + strings.Repeat("a/", 127) + "aa", "the limit is 255"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			g := NewWithT(t)
			_, err := Parse(tt.in)
			g.Expect(err).To(HaveOccurred())
			g.Expect(errors.Is(err, ErrInvalidReference)).To(BeTrue())
			g.Expect(err.Error()).To(HavePrefix("invalid image reference " + strconv.Quote(tt.in) + ": "))
			g.Expect(err.Error()).To(ContainSubstring(tt.reason))
		})
	}
}

func TestParse_errorMessageReadsWell(t *testing.T) {
	g := NewWithT(t)
	_, err := Parse("Nginx")
	g.Expect(err).To(MatchError(`invalid image reference "Nginx": repository must be lowercase`))
}

func TestReference_formats(t *testing.T) {
	tests := []struct {
		ref        Reference
		name, full string
	}{
		{Reference{"docker.io", "library/nginx", "1.25", ""}, "docker.io/library/nginx", "docker.io/library/nginx:1.25"},
		{Reference{"ghcr.io", "a/b", "", dig256}, "ghcr.io/a/b", "ghcr.io/a/b@" + dig256},
		{Reference{"localhost:5000", "a", "v1", dig256}, "localhost:5000/a", "localhost:5000/a:v1@" + dig256},
		{Reference{}, "/", ""},
	}
	for _, tt := range tests {
		t.Run(tt.full, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(tt.ref.Name()).To(Equal(tt.name))
			g.Expect(tt.ref.String()).To(Equal(tt.full))
		})
	}
}

func TestReference_WithDigestPinsAndUnpins(t *testing.T) {
	g := NewWithT(t)
	tagged := Reference{"docker.io", "library/nginx", "1.25", ""}

	pinned := tagged.WithDigest(dig256)
	g.Expect(pinned).To(Equal(Reference{"docker.io", "library/nginx", "1.25", dig256}))
	g.Expect(tagged.Digest).To(BeEmpty(), "WithDigest must not modify its receiver")
	g.Expect(pinned.WithDigest("")).To(Equal(tagged))

	digestOnly := Reference{"docker.io", "library/nginx", "", dig256}
	g.Expect(digestOnly.WithDigest("")).To(Equal(Reference{"docker.io", "library/nginx", "latest", ""}))
}
