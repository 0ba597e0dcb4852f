package imageref

import (
	"errors"
	"fmt"
	"strings"
)

const (
	// DockerHub is the canonical registry of Docker Hub.
	DockerHub = "docker.io"

	// DefaultTag is the tag of a reference that names neither a tag nor a
	// digest, as the kubelet and every container runtime assume.
	DefaultTag = "latest"

	// officialRepoPrefix is the namespace of Docker Hub's official images,
	// which may be written without it ("nginx" is "library/nginx").
	officialRepoPrefix = "library/"
)

// dockerHubAliases are the other names Docker Hub answers to. They are
// folded into DockerHub so that "index.docker.io/library/nginx" and "nginx"
// are one image, as docker and containerd treat them.
var dockerHubAliases = map[string]bool{
	"index.docker.io":      true,
	"registry-1.docker.io": true,
}

// ErrInvalidReference is returned, wrapped with the offending input and the
// reason, by Parse for anything that is not an image reference.
var ErrInvalidReference = errors.New("invalid image reference")

// Reference is a parsed, canonical image reference. Two references that
// name the same image the same way (say "nginx" and
// "index.docker.io/library/nginx:latest") parse to equal values, so a
// Reference can be compared with == and used as a map key.
type Reference struct {
	// Registry is the canonical host[:port], lowercase but for a host that
	// only its upper case marks as one ("Docker/docker"). Docker Hub's aliases
	// and the empty host all become "docker.io".
	Registry string
	// Repository is the path inside the registry, e.g. "library/nginx".
	// Docker Hub names of a single component get the "library/" namespace.
	Repository string
	// Tag is "" when only a digest was given, and "latest" when neither a
	// tag nor a digest was.
	Tag string
	// Digest is "sha256:<64 hex>", "sha512:<128 hex>" or "".
	Digest string
}

// Parse parses s as a pod spec's image field, following the distribution
// reference grammar and Docker Hub's normalisation, and returns the
// canonical Reference. The error quotes s and says what is wrong with it,
// e.g. `invalid image reference "Nginx": repository must be lowercase`; it
// wraps ErrInvalidReference.
func Parse(s string) (Reference, error) {
	if reason := checkCharacters(s); reason != "" {
		return Reference{}, invalid(s, reason)
	}
	if len(s) == 64 && strings.Trim(s, "0123456789abcdef") == "" {
		// The docker CLI reserves this form for image IDs, and the kubelet
		// refuses it for the same reason.
		return Reference{}, invalid(s, "a 64-character hex string is an image ID, not a reference")
	}

	var ref Reference
	name, digest, hasDigest := strings.Cut(s, "@")
	if hasDigest {
		if reason := checkDigest(digest); reason != "" {
			return Reference{}, invalid(s, reason)
		}
		ref.Digest = digest
	}

	// A ':' after the last '/' starts the tag; one before it belongs to the
	// registry's port.
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name, ref.Tag = name[:i], name[i+1:]
		if !isTag(ref.Tag) {
			if ref.Tag == "" {
				return Reference{}, invalid(s, "tag is empty")
			}
			return Reference{}, invalid(s, `tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`)
		}
	} else if !hasDigest {
		ref.Tag = DefaultTag
	}

	registry, repository := splitRegistry(name)
	if registry == "" {
		registry = DockerHub
	} else {
		// Host names are case-insensitive, so the canonical host is
		// lowercase, as backups can only carry lowercase. Deliberately unlike
		// distribution, which keeps the case as written. A host that is a host
		// only because of its upper case ("Docker/docker") keeps it, or its
		// canonical form would read as a Docker Hub path; Namer hashes such
		// names.
		if lower := strings.ToLower(registry); looksLikeDomain(lower) {
			registry = lower
		}
		if !isDomain(registry) {
			return Reference{}, invalid(s, fmt.Sprintf("registry %q must be a host name, IPv4 or [IPv6] address with an optional :port", registry))
		}
		if dockerHubAliases[registry] {
			registry = DockerHub
		}
	}
	if reason := checkRepository(repository); reason != "" {
		return Reference{}, invalid(s, reason)
	}
	if registry == DockerHub && !strings.Contains(repository, "/") {
		repository = officialRepoPrefix + repository
	}
	ref.Registry, ref.Repository = registry, repository

	// distribution limits the path, not host plus path: the kubelet pulls a
	// 255-character path on a long host, so it must be backed up too.
	if n := len(ref.Repository); n > maxNameLength {
		return Reference{}, invalid(s, fmt.Sprintf("its repository path is %d characters long, the limit is %d", n, maxNameLength))
	}
	return ref, nil
}

// splitRegistry splits a name into its registry host and repository path,
// with distribution's rule: the first component is a host only if there is
// a '/' after it and it looks like a domain. "localhost:5000" alone is
// therefore the Docker Hub image "localhost" with tag "5000", as docker
// reads it.
func splitRegistry(name string) (registry, repository string) {
	first, rest, ok := strings.Cut(name, "/")
	if ok && looksLikeDomain(first) {
		return first, rest
	}
	return "", name
}

// checkCharacters returns why s cannot be a reference at a glance, or "".
func checkCharacters(s string) string {
	if s == "" {
		return "reference is empty"
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
			return "reference must not contain whitespace"
		case c < 0x20 || c == 0x7f:
			return "reference must not contain control characters"
		case c >= 0x80:
			return "reference must be ASCII"
		}
	}
	return ""
}

// checkRepository returns why repository is not a repository path, or "".
func checkRepository(repository string) string {
	if repository == "" {
		return "repository is empty"
	}
	if strings.ToLower(repository) != repository {
		return "repository must be lowercase"
	}
	for _, c := range strings.Split(repository, "/") {
		if c == "" {
			return "repository has an empty path component"
		}
		if !isPathComponent(c) {
			return fmt.Sprintf("repository path component %s must be lowercase letters and digits joined by '.', '_', '__' or dashes", quoteValue(c))
		}
	}
	return ""
}

func invalid(s, reason string) error {
	return fmt.Errorf("%w %q: %s", ErrInvalidReference, s, reason)
}

// Name returns registry/repository, the reference without tag or digest.
func (r Reference) Name() string {
	return r.Registry + "/" + r.Repository
}

// String returns the canonical form: "docker.io/library/nginx:1.25",
// "host/repo@sha256:..." or "host/repo:tag@sha256:...". Parse(r.String())
// returns r for every r that Parse returned. The zero Reference is "".
func (r Reference) String() string {
	if r.Repository == "" {
		return ""
	}
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// WithDigest returns r pinned to digest d, keeping its tag, as resolved
// from the registry. It does not check d: pass digests a registry returned.
// An empty d unpins r; a reference without a tag then gets "latest", so that
// it still names something.
func (r Reference) WithDigest(d string) Reference {
	r.Digest = d
	if d == "" && r.Tag == "" {
		r.Tag = DefaultTag
	}
	return r
}
