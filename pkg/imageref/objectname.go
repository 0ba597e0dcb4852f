package imageref

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

const (
	// maxObjectNameLength is the longest DNS-1123 subdomain, the limit on
	// the name of most Kubernetes objects, ClonedImage included.
	maxObjectNameLength = 253

	// objectNameDigestLength is how much of a digest's hex the readable
	// part of an object name shows: like docker's short image IDs, enough
	// for a person to match it, while the hash tells names apart.
	objectNameDigestLength = 12
)

// ObjectName returns the metadata.name of the ClonedImage for src, e.g.
// "docker.io-library-nginx-1.25-3f9a1c2e5b7d9e01": a readable form of the
// reference followed by 16 hex characters of the SHA-256 of src.String().
//
// The readable part is lossy (it lowercases tags, folds '/', ':', '@' and
// '_' into '-', shortens digests and is cut to fit), so the hash is what
// keeps different sources apart. It is taken over the canonical form, so
// equivalent inputs ("nginx" and "docker.io/library/nginx:latest") give one
// name. The result is always a valid DNS-1123 subdomain.
func ObjectName(src Reference) string {
	sum := sha256.Sum256([]byte(src.String()))
	h := hex.EncodeToString(sum[:])[:hashLength]

	readable := src.Name()
	if src.Tag != "" {
		readable += "-" + src.Tag
	}
	if src.Digest != "" {
		alg, hexPart, _ := strings.Cut(src.Digest, ":")
		if len(hexPart) > objectNameDigestLength {
			hexPart = hexPart[:objectNameDigestLength]
		}
		readable += "-" + alg + "-" + hexPart
	}
	r := sanitizeSubdomain(strings.ToLower(readable))
	if limit := maxObjectNameLength - 1 - hashLength; len(r) > limit {
		r = strings.TrimRight(r[:limit], ".-")
	}
	if r == "" {
		return h
	}
	return r + "-" + h
}

// sanitizeSubdomain turns s into a DNS-1123 subdomain, or "": characters
// other than lowercase letters, digits, '.' and '-' become '-', and a run of
// them other than a single '.' or only dashes becomes one '-', so that every
// dot-separated label starts and ends with a letter or digit.
func sanitizeSubdomain(s string) string {
	return collapseSeparators(s, func(run string) bool {
		return run == "." || strings.Trim(run, "-") == ""
	})
}
