package imageref

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Scheme is how a Namer lays out backup repositories under the backup path.
type Scheme string

const (
	// Flat puts every backup one level under the backup path:
	// quay.io/acme/docker.io_library_nginx. It is the default because it
	// works on every registry, Docker Hub's namespace/name included.
	Flat Scheme = "flat"
	// Nested mirrors the source's registry and path under the backup path:
	// quay.io/acme/docker.io/library/nginx. It needs a registry with nested
	// repositories (distribution, Harbor, ECR, GAR, GitLab ...).
	Nested Scheme = "nested"
)

// ParseScheme parses a naming scheme as written in configuration. The empty
// string is Flat, so that leaving the setting out works everywhere.
func ParseScheme(s string) (Scheme, error) {
	switch v := Scheme(strings.ToLower(strings.TrimSpace(s))); v {
	case "":
		return Flat, nil
	case Flat, Nested:
		return v, nil
	}
	return "", fmt.Errorf("unknown naming scheme %q: use %q or %q", s, Flat, Nested)
}

const (
	// hashLength is how many hex characters of a SHA-256 tell shortened
	// names apart: 64 bits, so a collision needs about 2^32 distinct
	// sources with the same readable prefix.
	hashLength = 16

	// hashSeparator joins the readable part of a shortened name to its
	// hash. It is the only place a flat name, or the first level of a nested
	// one, can hold "__"; see Namer.
	hashSeparator = "__"

	// minNameBudget is the least room a backup registry must leave for the
	// names under it, so that shortened names keep a readable part.
	minNameBudget = 64
)

// Namer maps a source image to its backup under BACKUP_REGISTRY.
//
// Backup repositories are injective: two sources with different names never
// share one, so no copy can overwrite another image's tags. The argument, per
// scheme:
//
// Flat names one path component R under the backup path. A source whose name
// has no '_' and whose registry has no port (or IPv6 brackets) gets
// R = registry + "_" + path with every '/' as '_'. R is invertible: a
// registry holds no '_', so the first '_' ends it and every later '_' was a
// '/'. Mapping the port's ':' to '-' or '_' instead would not be invertible
// (a.com:5000/x would meet a.com-5000/x or a.com/5000/x), and neither would
// keeping a source's own '_' (a.com/a_b/c would meet a.com/a/b_c). Every
// other source, and any R that would not fit, gets R = readable + "__" + 16
// hex of SHA-256(source name), the readable part cut to fit. The first kind
// never contains "__" (its '_' are single, each between two non-empty
// parts), the second always does, so the kinds cannot meet; two of the
// second kind are equal only if their hashes, a fixed-length suffix, are.
//
// Nested names registry/path under the backup path, with the port's ':' as
// '_'. Registries hold no '_', so this inverts too. A source that does not
// fit, or whose registry is an IPv6 address (brackets cannot appear in a
// path), gets the single hashed component of the flat scheme instead. A
// nested name has at least two components under the backup path, the first
// of which never contains "__"; the hashed name has exactly one, so again
// the kinds cannot meet.
//
// The hashed component is the same in both schemes, and otherwise a flat
// name has one component without "__" and a nested one at least two, so a
// backup path can switch schemes without two sources ever meeting.
//
// Every name fits the 255-character limit of a reference's name, registry
// included, and matches the distribution grammar, so Parse accepts it.
type Namer struct {
	registry string
	prefix   string
	scheme   Scheme
	// budget is how long the part of a backup repository below the prefix
	// may be.
	budget int
}

// NewNamer returns a Namer for the backup registry given as host[/path], as
// in BACKUP_REGISTRY: "quay.io/acme", "localhost:5000",
// "127.0.0.1:5000/a/b". The empty scheme is Flat.
func NewNamer(backupRegistry string, scheme Scheme) (*Namer, error) {
	s := strings.TrimSuffix(strings.TrimSpace(backupRegistry), "/")
	q := quoteValue(backupRegistry)
	if s == "" {
		return nil, errors.New("BACKUP_REGISTRY is empty: set it in ConfigMap image-cloner-configuration")
	}
	if strings.Contains(s, "://") {
		return nil, fmt.Errorf("BACKUP_REGISTRY %s must not be a URL: write it as host[/path], e.g. quay.io/acme", q)
	}
	host, prefix, _ := strings.Cut(s, "/")
	if !looksLikeDomain(host) {
		return nil, fmt.Errorf("BACKUP_REGISTRY %s does not start with a registry host: write it as host[/path], e.g. %s", q, quoteValue("docker.io/"+s))
	}
	host = strings.ToLower(host)
	if !isDomain(host) {
		return nil, fmt.Errorf("BACKUP_REGISTRY %s: registry %s must be a host name, IPv4 or [IPv6] address with an optional :port", q, quoteValue(host))
	}
	if dockerHubAliases[host] {
		host = DockerHub
	}
	if prefix != "" {
		if reason := checkRepository(prefix); reason != "" {
			return nil, fmt.Errorf("BACKUP_REGISTRY %s: %s", q, reason)
		}
	}

	switch scheme {
	case "":
		scheme = Flat
	case Flat, Nested:
	default:
		return nil, fmt.Errorf("unknown naming scheme %q: use %q or %q", scheme, Flat, Nested)
	}
	if host == DockerHub {
		// Docker Hub repositories are exactly namespace/name.
		if prefix == "" || strings.Contains(prefix, "/") {
			return nil, fmt.Errorf("BACKUP_REGISTRY %s: Docker Hub needs exactly one namespace, e.g. docker.io/acme", q)
		}
		if scheme == Nested {
			return nil, fmt.Errorf("BACKUP_REGISTRY %s: Docker Hub does not allow nested repositories: use the %q naming scheme", q, Flat)
		}
	}

	base := host + "/"
	if prefix != "" {
		base += prefix + "/"
	}
	budget := maxNameLength - len(base)
	if budget < minNameBudget {
		return nil, fmt.Errorf("BACKUP_REGISTRY %s is too long: it must leave %d of the %d characters an image name may have", q, minNameBudget, maxNameLength)
	}
	return &Namer{registry: host, prefix: prefix, scheme: scheme, budget: budget}, nil
}

// Registry returns the canonical host[:port] of the backup registry.
func (n *Namer) Registry() string { return n.registry }

// Prefix returns the path under which backups go, "" for the registry's root.
func (n *Namer) Prefix() string { return n.prefix }

// Backup returns where src is copied to. The backup keeps src's tag and
// digest; a source pinned by digest alone gets the tag "digest-sha256-<hex>", because
// registries such as quay.io garbage-collect untagged manifests. It fails for
// a reference Parse did not return, and for a source that is already a
// backup.
//
// src must come from Parse: a Reference is a value parsed once, at the edge where an image
// enters (a workload's image field, a ClonedImage's spec), and passed on as is. Backup does
// not parse it again; a Reference built by hand with a non-canonical field gets a backup name
// built from that field.
func (n *Namer) Backup(src Reference) (Reference, error) {
	if src.Registry == "" || src.Repository == "" {
		return Reference{}, fmt.Errorf("naming backup: %w: reference is empty", ErrInvalidReference)
	}
	if n.IsBackup(src) {
		return Reference{}, fmt.Errorf("naming backup of %s: it is already in the backup registry %s", src, n.base())
	}

	var below string
	switch n.scheme {
	case Nested:
		below = n.nested(src)
	default:
		below = n.flat(src)
	}
	repository := below
	if n.prefix != "" {
		repository = n.prefix + "/" + below
	}
	tag, err := backupTag(src)
	if err != nil {
		return Reference{}, fmt.Errorf("naming backup of %s: %w", src, err)
	}
	return Reference{Registry: n.registry, Repository: repository, Tag: tag, Digest: src.Digest}, nil
}

// IsBackup reports whether r lives under the backup registry and path. It
// compares whole path components: under quay.io/acme, quay.io/acme/x is a
// backup and quay.io/acmecorp/x is not.
func (n *Namer) IsBackup(r Reference) bool {
	if r.Registry != n.registry {
		return false
	}
	return n.prefix == "" || strings.HasPrefix(r.Repository, n.prefix+"/")
}

func (n *Namer) base() string {
	if n.prefix == "" {
		return n.registry
	}
	return n.registry + "/" + n.prefix
}

// flat returns the single path component a source gets in the Flat scheme.
func (n *Namer) flat(src Reference) string {
	readable := flatReadable(src)
	if !strings.Contains(src.Name(), "_") && !strings.Contains(src.Registry, ":") && !hasUpper(src.Registry) && len(readable) <= n.budget {
		return readable
	}
	return hashedComponent(readable, src, n.budget)
}

// nested returns the path a source gets in the Nested scheme.
func (n *Namer) nested(src Reference) string {
	if !strings.HasPrefix(src.Registry, "[") && !hasUpper(src.Registry) {
		p := strings.Replace(src.Registry, ":", "_", 1) + "/" + src.Repository
		if len(p) <= n.budget {
			return p
		}
	}
	return hashedComponent(flatReadable(src), src, n.budget)
}

// hasUpper reports whether s has an upper-case letter: a registry such as
// "Docker" that only its case marks as a host, which a backup name, always
// lowercase, cannot carry readably without meeting "docker".
func hasUpper(s string) bool { return strings.ToLower(s) != s }

func flatReadable(src Reference) string {
	return src.Registry + "_" + strings.ReplaceAll(src.Repository, "/", "_")
}

// hashedComponent returns readable made into a valid path component, cut to
// fit budget, followed by "__" and a hash of the source name.
func hashedComponent(readable string, src Reference, budget int) string {
	sum := sha256.Sum256([]byte(src.Name()))
	h := hex.EncodeToString(sum[:])[:hashLength]

	r := sanitizeComponent(readable)
	if limit := budget - len(hashSeparator) - hashLength; len(r) > limit {
		// Cutting may leave a separator, or half of one, at the end.
		r = strings.TrimRight(r[:limit], "._-")
	}
	if r == "" {
		// Unreachable for parsed references, whose path starts with a
		// letter or digit; kept so the name always has the R__H shape.
		r = "image"
	}
	return r + hashSeparator + h
}

// sanitizeComponent turns s into a path component: characters other than
// lowercase letters, digits, '.', '_' and '-' become '-', and runs of
// separators the grammar does not allow ("._", "___", "-.") become a single
// '-'. The result may be empty.
func sanitizeComponent(s string) string {
	return collapseSeparators(s, isSeparator)
}

// collapseSeparators keeps lowercase letters and digits, drops leading and
// trailing runs of anything else, keeps an inner run where keep says the
// grammar allows it, and writes any other inner run as a single '-'.
func collapseSeparators(s string, keep func(run string) bool) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		if isLowerAlnum(s[i]) {
			b.WriteByte(s[i])
			i++
			continue
		}
		j := i
		for j < len(s) && !isLowerAlnum(s[j]) {
			j++
		}
		run := s[i:j]
		i = j
		switch {
		case b.Len() == 0 || j == len(s):
			// Leading and trailing separators are dropped.
		case keep(run):
			b.WriteString(run)
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

// digestTag is the tag that pins digest in a backup repository, and the tag a
// digest-only source's backup gets: "digest-" and the digest with ':' as '-',
// cut to the tag limit.
func digestTag(digest string) string {
	t := digestTagPrefix + strings.Replace(digest, ":", "-", 1)
	if len(t) > maxTagLength {
		t = t[:maxTagLength]
	}
	return t
}

// digestTagPrefix starts every digest tag. Without it a digest tag would be the
// OCI referrers tag schema's tag, "sha256-<hex>", where a registry without the
// referrers API keeps the index of the image's signatures and other referrers.
const digestTagPrefix = "digest-"

// DigestTag is the tag that pins digest ("sha256:<hex>") in a backup repository:
// "digest-sha256-<hex>", cut to the tag limit. The copy engine tags every
// backup with it (pkg/mirror's WithDigestTags writes the same form), so that a
// digest a workload is pinned to survives the registry's garbage collection
// after the backup's tag moves. Backup never gives a source tag this form.
func DigestTag(digest string) string { return digestTag(digest) }

// backupTag is the tag of src's backup. A source's own tag is kept, except
// that two forms are reserved: digest tags, and the tags of the referrers tag
// schema ("sha256-<hex>", where the referrers of the image with that digest
// are listed by a registry without the referrers API). A tag of a reserved
// form, preceded by k >= 0 '_', gets one more '_'. That maps every tag onto
// every tag outside the reserved forms, one to one, so no source tag can move
// a digest tag or take a referrers index's place; only a tag of a reserved
// form already at the length limit has no backup name.
func backupTag(src Reference) (string, error) {
	if src.Tag == "" {
		return digestTag(src.Digest), nil
	}
	if !isReservedTag(strings.TrimLeft(src.Tag, "_")) {
		return src.Tag, nil
	}
	if len(src.Tag) >= maxTagLength {
		return "", fmt.Errorf("tag %s has the form of a digest tag (digest-sha256-<hex>) or of a referrers tag (sha256-<hex>), which backups reserve, and is too long to escape: retag the image", quoteValue(src.Tag))
	}
	return "_" + src.Tag, nil
}

// isReservedTag reports whether tag is what digestTag returns for some digest of
// a known algorithm, or that without its prefix: the referrers tag schema's tag.
func isReservedTag(tag string) bool {
	return isDigestForm(strings.TrimPrefix(tag, digestTagPrefix), len(tag)-len(strings.TrimPrefix(tag, digestTagPrefix)))
}

// isDigestForm reports whether tag is "<alg>-<hex>" for a known algorithm, the
// hex cut so that prefix more characters fit in the tag limit.
func isDigestForm(tag string, prefix int) bool {
	alg, hex, ok := strings.Cut(tag, "-")
	size, known := digestHexLength[alg]
	if !ok || !known {
		return false
	}
	if want := min(size, maxTagLength-prefix-len(alg)-1); len(hex) != want {
		return false
	}
	for i := 0; i < len(hex); i++ {
		if c := hex[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// quoteValue quotes a configuration value for an error message, cut to a readable length, with
// invisible and invalid characters escaped: a ConfigMap value can hold anything.
func quoteValue(v string) string {
	const max = 64
	if len(v) <= max {
		return strconv.Quote(v)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return strconv.Quote(v[:cut]) + "..."
}
