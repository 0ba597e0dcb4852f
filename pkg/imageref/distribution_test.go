package imageref

import (
	"strings"
	"testing"

	"github.com/distribution/reference"
)

// distributionSeeds are inputs of distribution/reference's own tests (reference_test.go and
// normalize_test.go at v0.6.0), the grammar the kubelet parses pod images with.
var distributionSeeds = []string{
	"test_com", "test.com:tag", "test.com:5000", "test.com/repo:tag", "test:5000/repo",
	"test:5000/repo:tag", "test:5000/repo@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	"test:5000/repo:tag@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	"", ":justtag", "@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	"repo@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "validname@invaliddigest:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	"Uppercase:tag", "test:5000/Uppercase/lowercase:tag", "lowercase:Uppercase",
	"domain/" + strings.Repeat("a", 256) + ":tag", strings.Repeat("a/", 127) + "a:tag-puts-this-over-max",
	"aa/asdf$$^/aa", "sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
	"b.gcr.io/test.example.com/my-app:test.example.com", "xn--n3h.com/myimage:xn--n3h.com",
	"xn--7o8h.com/myimage:xn--7o8h.com@sha512:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	"foo_bar.com:8080", "foo/foo_bar.com:8080", "192.168.1.1", "192.168.1.1:tag", "192.168.1.1:5000",
	"192.168.1.1/repo", "192.168.1.1:5000/repo", "192.168.1.1:5000/repo:5050", "a.b.c.d/repo",
	"[2001:db8::1]", "[2001:db8::1]:5000", "[2001:db8::1]:tag", "[2001:db8::1]/repo",
	"[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8::1]:5000/repo", "[2001:db8::1]:5000/repo:tag",
	"[2001:db8::1]:5000/repo@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	"[2001:db8::]:5000/repo", "[::1]:5000/repo", "[fe80::1%eth0]:5000/repo", "[fe80::1%@invalidzone]:5000/repo",
	"example.com/" + strings.Repeat("a", 255) + ":tag", "example.com/" + strings.Repeat("a", 256),
	"LOCALDOMAIN/fooo", "Docker/docker", "docker/Docker", "-docker", "-docker/docker", "docker/-docker",
	"xn--n3h.com:5000/foo", "localhost/foo", "localhost:5000/foo", "localhost", "localhost:5000",
	"index.docker.io/library/nginx", "docker.io/nginx:1.25", "ubuntu", "library/ubuntu", "docker.io/library/ubuntu:latest",
	"registry.k8s.io/pause:3.10", "registry-1.docker.io/library/nginx",
	"a" + strings.Repeat(".b", 120) + "/" + strings.Repeat("c", 250) + ":t",
	"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
}

func TestParse_acceptsWhatDistributionAccepts(t *testing.T) {
	for _, s := range distributionSeeds {
		t.Run(s, func(t *testing.T) { compareWithDistribution(t, s) })
	}
}

// Run with: go test -run='^$' -fuzz=FuzzParse_agreesWithDistribution -fuzztime=60s ./pkg/imageref/
func FuzzParse_agreesWithDistribution(f *testing.F) {
	for _, s := range distributionSeeds {
		f.Add(s)
	}
	f.Fuzz(compareWithDistribution)
}

// compareWithDistribution checks that Parse accepts s exactly when distribution's
// ParseNormalizedNamed does (the kubelet's parser), with the same canonical form apart from
// the deliberate differences below.
func compareWithDistribution(t *testing.T, s string) {
	named, derr := reference.ParseNormalizedNamed(s)
	ref, err := Parse(s)
	if (derr == nil) != (err == nil) {
		t.Fatalf("Parse(%q) error %v, distribution's %v", s, err, derr)
	}
	if err != nil {
		return
	}
	want := reference.TagNameOnly(named).String()
	domain, rest, _ := strings.Cut(want, "/")
	// Deliberate: host names are case-insensitive and backups can only carry lowercase, so
	// the canonical host is lowercase where that still reads as a host; registry-1.docker.io, which Docker Hub also answers
	// to, is folded into docker.io as docker and containerd do.
	if lower := strings.ToLower(domain); looksLikeDomain(lower) {
		domain = lower
	}
	if domain == "registry-1.docker.io" {
		domain = DockerHub
		if !strings.Contains(strings.Split(strings.Split(rest, "@")[0], ":")[0], "/") {
			rest = officialRepoPrefix + rest
		}
	}
	if got := ref.String(); got != domain+"/"+rest {
		t.Fatalf("Parse(%q) = %q, distribution's canonical form is %q", s, got, want)
	}
}
