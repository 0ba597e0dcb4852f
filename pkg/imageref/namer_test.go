package imageref

import (
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

func TestParseScheme_defaultsToFlat(t *testing.T) {
	tests := []struct {
		in   string
		want Scheme
	}{
		{"", Flat},
		{"flat", Flat},
		{"nested", Nested},
		{" Nested\n", Nested},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			g := NewWithT(t)
			got, err := ParseScheme(tt.in)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tt.want))
		})
	}

	_, err := ParseScheme("deep")
	NewWithT(t).Expect(err).To(MatchError(`unknown naming scheme "deep": use "flat" or "nested"`))
}

func TestNewNamer_splitsHostAndPath(t *testing.T) {
	tests := []struct {
		in               string
		scheme           Scheme
		registry, prefix string
	}{
		{"quay.io/acme", Flat, "quay.io", "acme"},
		{"quay.io/acme/", Nested, "quay.io", "acme"},
		{" quay.io/acme\n", "", "quay.io", "acme"},
		{"Quay.IO/acme", Flat, "quay.io", "acme"},
		{"localhost:5000", Nested, "localhost:5000", ""},
		{"127.0.0.1:5000/a/b", Nested, "127.0.0.1:5000", "a/b"},
		{"[::1]:5000/mirror", Flat, "[::1]:5000", "mirror"},
		{"docker.io/acme", Flat, "docker.io", "acme"},
		{"index.docker.io/acme", Flat, "docker.io", "acme"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			g := NewWithT(t)
			n, err := NewNamer(tt.in, tt.scheme)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(n.Registry()).To(Equal(tt.registry))
			g.Expect(n.Prefix()).To(Equal(tt.prefix))
		})
	}
}

func TestNewNamer_rejectsWhatCannotHoldBackups(t *testing.T) {
	tests := []struct {
		in     string
		scheme Scheme
		want   string
	}{
		{"", Flat, "BACKUP_REGISTRY is empty: set it in ConfigMap image-cloner-configuration"},
		{"  \n", Flat, "BACKUP_REGISTRY is empty: set it in ConfigMap image-cloner-configuration"},
		{"https://quay.io/acme", Flat, "must not be a URL"},
		{"acme", Flat, "does not start with a registry host: write it as host[/path], e.g. \"docker.io/acme\""},
		{"acme/mirror", Flat, "does not start with a registry host"},
		{"quay_io.com/acme", Flat, `registry "quay_io.com" must be a host name`},
		{"quay.io/Acme", Flat, "repository must be lowercase"},
		{"quay.io/acme:latest", Flat, `path component "acme:latest"`},
		{"quay.io//acme", Flat, "empty path component"},
		{"quay.io/acme", "deep", `unknown naming scheme "deep"`},
		{"docker.io", Flat, "Docker Hub needs exactly one namespace"},
		{"docker.io/a/b", Flat, "Docker Hub needs exactly one namespace"},
		{"docker.io/acme", Nested, "Docker Hub does not allow nested repositories"},
		{"registry.example/" + strings.Repeat("a", 180), Flat, "is too long"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			g := NewWithT(t)
			n, err := NewNamer(tt.in, tt.scheme)
			g.Expect(err).To(MatchError(ContainSubstring(tt.want)))
			g.Expect(n).To(BeNil())
		})
	}
}

// The backup names below are a compatibility contract: changing how a
// source is named strands every backup already made under the old name.
func TestNamer_Backup_flat(t *testing.T) {
	long := "ghcr.io/" + strings.Repeat("abcdefghij/", 22) + "z"
	tests := []struct {
		backupRegistry, src, want string
	}{
		{"quay.io/acme", "nginx:1.25", "quay.io/acme/docker.io_library_nginx:1.25"},
		{"quay.io/acme", "nginx", "quay.io/acme/docker.io_library_nginx:latest"},
		{"quay.io/acme", "bitnami/nginx", "quay.io/acme/docker.io_bitnami_nginx:latest"},
		{"quay.io/acme", "ghcr.io/nginx", "quay.io/acme/ghcr.io_nginx:latest"},
		{"quay.io/acme", "ghcr.io/org/app:v1", "quay.io/acme/ghcr.io_org_app:v1"},
		{"quay.io/acme", "localhost/5000/nginx", "quay.io/acme/localhost_5000_nginx:latest"},
		{"quay.io/acme", "a.com/5000/x", "quay.io/acme/a.com_5000_x:latest"},
		{"quay.io/acme", "a.com-5000/x", "quay.io/acme/a.com-5000_x:latest"},
		// A port or an '_' would make the readable name ambiguous: hashed.
		{"quay.io/acme", "localhost:5000/nginx", "quay.io/acme/localhost-5000_nginx__a5b5f12c8a8e5841:latest"},
		{"quay.io/acme", "a.com:5000/x", "quay.io/acme/a.com-5000_x__67e1fda84c0360de:latest"},
		{"quay.io/acme", "quay.io/prometheus/node_exporter:v1.8.0", "quay.io/acme/quay.io_prometheus_node_exporter__df8623d8dc1f58ed:v1.8.0"},
		{"quay.io/acme", "[::1]:5000/app", "quay.io/acme/1-5000_app__e4226e8a60ee9143:latest"},
		// Digest-only sources get a tag so that the backup is not
		// garbage-collected as an untagged manifest; tag@digest keeps both.
		{"quay.io/acme", "nginx@" + dig256, "quay.io/acme/docker.io_library_nginx:digest-sha256-" + hex64 + "@" + dig256},
		{"quay.io/acme", "nginx:1.25@" + dig256, "quay.io/acme/docker.io_library_nginx:1.25@" + dig256},
		{"quay.io/acme", "quay.io/a/b@" + dig512, "quay.io/acme/quay.io_a_b:" + ("digest-sha512-" + hex64 + hex64)[:128] + "@" + dig512},
		// Two tag forms are reserved: the digest tags every backup gets, and the
		// referrers tag schema's tags (sha256-<hex>), where a registry without the
		// referrers API lists an image's signatures. A source tag of either form gets
		// one more '_', so it cannot move one.
		{"quay.io/acme", "nginx:digest-sha256-" + hex64, "quay.io/acme/docker.io_library_nginx:_digest-sha256-" + hex64},
		{"quay.io/acme", "nginx:_digest-sha256-" + hex64, "quay.io/acme/docker.io_library_nginx:__digest-sha256-" + hex64},
		{"quay.io/acme", "nginx:digest-sha256-" + hex64[:63], "quay.io/acme/docker.io_library_nginx:digest-sha256-" + hex64[:63]},
		{"quay.io/acme", "nginx:digest-" + hex64, "quay.io/acme/docker.io_library_nginx:digest-" + hex64},
		{"quay.io/acme", "nginx:sha256-" + hex64, "quay.io/acme/docker.io_library_nginx:_sha256-" + hex64},
		{"quay.io/acme", "nginx:__sha256-" + hex64, "quay.io/acme/docker.io_library_nginx:___sha256-" + hex64},
		{"quay.io/acme", "nginx:sha256-" + hex64 + "@" + dig256, "quay.io/acme/docker.io_library_nginx:_sha256-" + hex64 + "@" + dig256},
		{"quay.io/acme", "nginx:sha256-" + hex64[:63], "quay.io/acme/docker.io_library_nginx:sha256-" + hex64[:63]},
		{"quay.io/acme", "nginx:sha256-" + hex64 + ".sig", "quay.io/acme/docker.io_library_nginx:sha256-" + hex64 + ".sig"},
		{"quay.io/acme", "nginx:_sha512-" + hex64, "quay.io/acme/docker.io_library_nginx:_sha512-" + hex64},
		{"localhost:5000", "nginx:1.25", "localhost:5000/docker.io_library_nginx:1.25"},
		{"docker.io/acme", "ghcr.io/org/app:v1", "docker.io/acme/ghcr.io_org_app:v1"},
		{"127.0.0.1:5000/a/b", "nginx:1.25", "127.0.0.1:5000/a/b/docker.io_library_nginx:1.25"},
		// Too long for one component under quay.io/acme: cut and hashed.
		{"quay.io/acme", long, "quay.io/acme/ghcr.io_" + strings.Repeat("abcdefghij_", 19) + "abcdefg__c23890f0aee51554:latest"},
	}
	for _, tt := range tests {
		t.Run(tt.backupRegistry+" "+tt.src, func(t *testing.T) {
			expectBackup(t, tt.backupRegistry, Flat, tt.src, tt.want)
		})
	}
}

func TestNamer_Backup_nested(t *testing.T) {
	long := "ghcr.io/" + strings.Repeat("abcdefghij/", 22) + "z"
	tests := []struct {
		backupRegistry, src, want string
	}{
		{"quay.io/acme", "nginx:1.25", "quay.io/acme/docker.io/library/nginx:1.25"},
		{"quay.io/acme", "bitnami/nginx", "quay.io/acme/docker.io/bitnami/nginx:latest"},
		{"quay.io/acme", "ghcr.io/org/app:v1", "quay.io/acme/ghcr.io/org/app:v1"},
		{"quay.io/acme", "localhost:5000/nginx", "quay.io/acme/localhost_5000/nginx:latest"},
		{"quay.io/acme", "localhost/5000/nginx", "quay.io/acme/localhost/5000/nginx:latest"},
		{"quay.io/acme", "a.com:5000/x", "quay.io/acme/a.com_5000/x:latest"},
		{"quay.io/acme", "a.com-5000/x", "quay.io/acme/a.com-5000/x:latest"},
		{"quay.io/acme", "quay.io/prometheus/node_exporter:v1.8.0", "quay.io/acme/quay.io/prometheus/node_exporter:v1.8.0"},
		{"quay.io/acme", "nginx@" + dig256, "quay.io/acme/docker.io/library/nginx:digest-sha256-" + hex64 + "@" + dig256},
		{"quay.io/acme", "nginx:1.25@" + dig256, "quay.io/acme/docker.io/library/nginx:1.25@" + dig256},
		{"localhost:5000", "ghcr.io/org/app:v1", "localhost:5000/ghcr.io/org/app:v1"},
		{"127.0.0.1:5000/a/b", "nginx:1.25", "127.0.0.1:5000/a/b/docker.io/library/nginx:1.25"},
		// Brackets cannot appear in a path, and long names do not fit:
		// both get the flat scheme's hashed component.
		{"quay.io/acme", "[::1]:5000/app", "quay.io/acme/1-5000_app__e4226e8a60ee9143:latest"},
		{"quay.io/acme", long, "quay.io/acme/ghcr.io_" + strings.Repeat("abcdefghij_", 19) + "abcdefg__c23890f0aee51554:latest"},
	}
	for _, tt := range tests {
		t.Run(tt.backupRegistry+" "+tt.src, func(t *testing.T) {
			expectBackup(t, tt.backupRegistry, Nested, tt.src, tt.want)
		})
	}
}

func expectBackup(t *testing.T, backupRegistry string, scheme Scheme, src, want string) {
	t.Helper()
	g := NewWithT(t)
	n, err := NewNamer(backupRegistry, scheme)
	g.Expect(err).NotTo(HaveOccurred())
	ref, err := Parse(src)
	g.Expect(err).NotTo(HaveOccurred())

	got, err := n.Backup(ref)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got.String()).To(Equal(want))
	g.Expect(len(got.Name())).To(BeNumerically("<=", maxNameLength))
	g.Expect(Parse(got.String())).To(Equal(got))
	g.Expect(n.IsBackup(got)).To(BeTrue())
}

func TestNamer_Backup_rejectsBackupsAndEmptyReferences(t *testing.T) {
	g := NewWithT(t)
	n, err := NewNamer("quay.io/acme", Flat)
	g.Expect(err).NotTo(HaveOccurred())

	_, err = n.Backup(Reference{Registry: "quay.io", Repository: "acme/docker.io_library_nginx", Tag: "1.25"})
	g.Expect(err).To(MatchError("naming backup of quay.io/acme/docker.io_library_nginx:1.25: it is already in the backup registry quay.io/acme"))

	_, err = n.Backup(Reference{})
	g.Expect(err).To(MatchError(ContainSubstring("reference is empty")))
	g.Expect(err).To(MatchError(ErrInvalidReference))
}

func TestNamer_IsBackup_matchesWholePathComponents(t *testing.T) {
	tests := []struct {
		backupRegistry, ref string
		want                bool
	}{
		{"quay.io/acme", "quay.io/acme/x", true},
		{"quay.io/acme", "quay.io/acme/x/y:v1", true},
		{"quay.io/acme", "QUAY.IO/acme/x", true},
		{"quay.io/acme", "quay.io/acmecorp/x", false},
		{"quay.io/acme", "quay.io/acme", false},
		{"quay.io/acme", "quay.io/acm/x", false},
		{"quay.io/acme", "quay.io/x/acme/y", false},
		{"quay.io/acme", "quay.io:443/acme/x", false},
		{"quay.io/acme", "ghcr.io/acme/x", false},
		{"quay.io/acme", "acme/x", false},
		{"docker.io/acme", "acme/x", true},
		{"docker.io/acme", "index.docker.io/acme/x", true},
		{"docker.io/acme", "acme", false},
		{"localhost:5000", "localhost:5000/anything/at/all", true},
		{"localhost:5000", "localhost/x", false},
		{"localhost:5000", "localhost:5001/x", false},
		{"127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b/x", true},
		{"127.0.0.1:5000/a/b", "127.0.0.1:5000/a/bc/x", false},
		{"127.0.0.1:5000/a/b", "127.0.0.1:5000/a/x", false},
	}
	for _, tt := range tests {
		t.Run(tt.backupRegistry+" "+tt.ref, func(t *testing.T) {
			g := NewWithT(t)
			n, err := NewNamer(tt.backupRegistry, Flat)
			g.Expect(err).NotTo(HaveOccurred())
			ref, err := Parse(tt.ref)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(n.IsBackup(ref)).To(Equal(tt.want))
		})
	}
}

// injectivityCorpus holds sources that a careless naming would merge: '_'
// against '/', ports against dashes and path components, Docker Hub's
// implicit names against explicit ones, and long paths that differ only
// past the point where they are cut.
func injectivityCorpus() []string {
	corpus := []string{
		"nginx", "nginx:1.25", "nginx@" + dig256, "nginx:1.25@" + dig256,
		"bitnami/nginx", "library/nginx", "docker.io/nginx", "library/library/nginx",
		"ghcr.io/nginx", "ghcr.io/library/nginx", "ghcr.io/docker.io/library/nginx",
		"localhost:5000/nginx", "localhost/5000/nginx", "localhost/nginx", "localhost_5000/nginx",
		"localhost-5000/nginx", "localhost.5000/nginx", "localhost:5001/nginx",
		"a_b/c", "a/b_c", "a__b/c", "a/b__c", "a_b_c", "a/b/c", "a-b/c", "a.b/c",
		"docker_io/a/b", "docker.io/a_b", "docker.io/docker.io_a/b",
		"a-5000/x", "a:5000/x", "a.com:5000/x", "a.com-5000/x", "a.com/5000/x", "a.com/5000_x",
		"a.com:5000/x_y", "a.com/5000_x/y", "a.com-5000/x_y",
		"[::1]:5000/app", "[::1]/5000/app", "[::2]:5000/app", "[::1]:5000/app_x",
		"1-5000/app", "ghcr.io/1-5000_app",
		"quay.io/prometheus/node_exporter", "quay.io/prometheus/node-exporter",
		"quay.io/prometheus/node/exporter", "quay.io/prometheus_node/exporter",
		"registry.k8s.io/pause", "registry.k8s.io/pause/pause",
		"quay.io/acmecorp/x", "quay.io/acme", "quay.io/acme_x",
		// Names that end the way a hashed name does.
		"ghcr.io/a__0123456789abcdef", "ghcr.io/localhost-5000_nginx__a5b5f12c8a8e5841",
		"ghcr.io/localhost-5000/nginx__a5b5f12c8a8e5841",
	}
	// Long names, distinct only in their last characters.
	for _, tail := range []string{"a", "b", "a_a", "a/a", "a__a"} {
		corpus = append(corpus,
			"ghcr.io/"+strings.Repeat("abcdefghij/", 22)+tail,
			"ghcr.io/"+strings.Repeat("abcdefghij_", 22)+tail,
			"ghcr.io:443/"+strings.Repeat("x", 200)+tail,
			"ghcr.io/"+strings.Repeat("x", 200)+tail,
			strings.Repeat("long-", 44)+tail,
		)
	}
	return corpus
}

// testNamers are the backup registries the property tests run against: a
// registry's root, short and deep paths, Docker Hub, and one so long that
// almost every name is shortened.
func testNamers(t testing.TB) map[string]*Namer {
	t.Helper()
	namers := map[string]*Namer{}
	for _, reg := range []string{"quay.io/acme", "localhost:5000", "127.0.0.1:5000/a/b", "docker.io/acme", "registry.example/" + strings.Repeat("p", 170)} {
		for _, scheme := range []Scheme{Flat, Nested} {
			n, err := NewNamer(reg, scheme)
			if err != nil {
				continue // Docker Hub has no nested scheme.
			}
			namers[fmt.Sprintf("%s %s", reg, scheme)] = n
		}
	}
	return namers
}

func TestNamer_Backup_isInjective(t *testing.T) {
	corpus := injectivityCorpus()
	// Keyed by backup path, not by Namer: a backup path that has held
	// backups under one scheme may be switched to the other, so flat and
	// nested names must not collide with each other either.
	byBase := map[string]map[string]string{}
	for name, n := range testNamers(t) {
		base := n.Registry() + "/" + n.Prefix()
		if byBase[base] == nil {
			byBase[base] = map[string]string{}
		}
		byRepository := byBase[base]
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			for _, s := range corpus {
				src, err := Parse(s)
				g.Expect(err).NotTo(HaveOccurred(), s)
				if n.IsBackup(src) {
					continue
				}
				b, err := n.Backup(src)
				g.Expect(err).NotTo(HaveOccurred(), s)

				g.Expect(Parse(b.String())).To(Equal(b), "backup of %s must re-parse", s)
				g.Expect(n.IsBackup(b)).To(BeTrue(), "backup of %s must be recognised", s)
				g.Expect(b.Digest).To(Equal(src.Digest))
				if src.Tag != "" {
					g.Expect(b.Tag).To(Equal(src.Tag))
				}
				if prev, seen := byRepository[b.Repository]; seen {
					g.Expect(prev).To(Equal(src.Name()), "%s and %s share backup repository %s", prev, src.Name(), b.Repository)
				}
				byRepository[b.Repository] = src.Name()
			}
		})
	}
}

func TestNamer_Backup_shortensLongNamesWithAHash(t *testing.T) {
	g := NewWithT(t)
	n, err := NewNamer("quay.io/acme", Flat)
	g.Expect(err).NotTo(HaveOccurred())
	for _, tail := range []string{"a", "b"} {
		src, err := Parse("ghcr.io/" + strings.Repeat("abcdefghij/", 22) + tail)
		g.Expect(err).NotTo(HaveOccurred())
		b, err := n.Backup(src)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(len(b.Name())).To(BeNumerically("<=", maxNameLength))
		g.Expect(b.Repository).To(MatchRegexp(`^acme/ghcr\.io_abcdefghij_.*[a-z0-9]__[0-9a-f]{16}$`))
	}
}

func TestNamer_Backup_reservedTagTooLongToEscape(t *testing.T) {
	n, err := NewNamer("quay.io/acme", Flat)
	if err != nil {
		t.Fatal(err)
	}
	hex := strings.Repeat("ab", 64)
	tag := ("sha512-" + hex + hex)[:maxTagLength]
	src, err := Parse("nginx:" + tag)
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.Backup(src)
	if err == nil || !strings.Contains(err.Error(), "has the form of a digest tag") {
		t.Fatalf("Backup(%s) = %v, want the reserved-tag error", src, err)
	}
}

// Every backup tag is a valid tag, never a digest tag unless the source is
// pinned by digest alone, and distinct source tags get distinct backup tags.
func TestBackupTag_isInjectiveAndAvoidsDigestTags(t *testing.T) {
	hex := strings.Repeat("0f", 32)
	seen := map[string]string{}
	for _, tag := range []string{
		"latest", "1.25", "sha256-" + hex, "_sha256-" + hex, "__sha256-" + hex,
		"sha256-" + hex[:10], "sha256-" + strings.ToUpper(hex), "sha256-" + hex + "x", "_latest", "_",
		"digest-sha256-" + hex, "_digest-sha256-" + hex, "digest-sha256-" + hex[:10], "digest-" + hex,
	} {
		got, err := backupTag(Reference{Tag: tag})
		if err != nil {
			t.Fatalf("backupTag(%q): %v", tag, err)
		}
		if !isTag(got) {
			t.Errorf("backupTag(%q) = %q is not a tag", tag, got)
		}
		if isReservedTag(got) {
			t.Errorf("backupTag(%q) = %q has the reserved form", tag, got)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("backupTag(%q) = backupTag(%q) = %q", tag, other, got)
		}
		seen[got] = tag
	}
	for _, digest := range []string{"sha256:" + hex, "sha512:" + hex + hex} {
		if got := DigestTag(digest); !isReservedTag(got) || !strings.HasPrefix(got, "digest-") || len(got) > maxTagLength {
			t.Errorf("DigestTag(%q) = %q", digest, got)
		}
	}
	// The referrers tag schema's tag is reserved too, and is not a digest tag.
	if !isReservedTag("sha256-"+hex) || DigestTag("sha256:"+hex) == "sha256-"+hex {
		t.Errorf("the referrers tag schema's tag sha256-<hex> is not reserved apart from the digest tag")
	}
}

// A registry that only its upper case marks as a host cannot be carried in a lowercase
// backup name readably: "Docker/docker" would meet "docker.io/docker/docker"'s neighbours or
// "DOCKER/docker". It is hashed, and the two never meet.
func TestNamer_Backup_upperCaseRegistriesAreHashed(t *testing.T) {
	for _, scheme := range []Scheme{Flat, Nested} {
		n, err := NewNamer("quay.io/acme", scheme)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]string{}
		for _, s := range []string{"Docker/docker", "DOCKER/docker", "LOCALDOMAIN/fooo", "localdomain.example/fooo"} {
			src, err := Parse(s)
			if err != nil {
				t.Fatalf("Parse(%q): %v", s, err)
			}
			b, err := n.Backup(src)
			if err != nil {
				t.Fatalf("%s Backup(%s): %v", scheme, src, err)
			}
			if again, err := Parse(b.String()); err != nil || again != b {
				t.Fatalf("%s Backup(%s) = %s does not parse back: %v", scheme, src, b, err)
			}
			if other, dup := seen[b.Repository]; dup {
				t.Fatalf("%s: %s and %s share backup repository %s", scheme, s, other, b.Repository)
			}
			seen[b.Repository] = s
		}
	}
}
