package mirrortest

import "strings"

// PathKind is the kind of registry API endpoint a request is for.
type PathKind string

// The kinds of registry paths (OCI distribution spec, "Endpoints").
const (
	// KindAny matches every kind in FaultProxy and Recorder queries.
	KindAny PathKind = ""
	// KindPing is /v2/, the version check clients start with.
	KindPing PathKind = "ping"
	// KindManifest is /v2/<name>/manifests/<reference>.
	KindManifest PathKind = "manifest"
	// KindBlob is /v2/<name>/blobs/<digest>.
	KindBlob PathKind = "blob"
	// KindUpload is /v2/<name>/blobs/uploads/..., blob upload sessions and mounts.
	KindUpload PathKind = "upload"
	// KindTags is /v2/<name>/tags/list.
	KindTags PathKind = "tags"
	// KindReferrers is /v2/<name>/referrers/<digest>.
	KindReferrers PathKind = "referrers"
	// KindCatalog is /v2/_catalog.
	KindCatalog PathKind = "catalog"
	// KindOther is anything else, e.g. a token endpoint.
	KindOther PathKind = "other"
)

// KindOf tells the kind of a request path.
func KindOf(path string) PathKind {
	switch {
	case path == "/v2/" || path == "/v2":
		return KindPing
	case !strings.HasPrefix(path, "/v2/"):
		return KindOther
	case path == "/v2/_catalog":
		return KindCatalog
	case strings.Contains(path, "/blobs/uploads"):
		return KindUpload
	case strings.Contains(path, "/manifests/"):
		return KindManifest
	case strings.Contains(path, "/blobs/"):
		return KindBlob
	case strings.HasSuffix(path, "/tags/list"):
		return KindTags
	case strings.Contains(path, "/referrers/"):
		return KindReferrers
	}
	return KindOther
}

// RepositoryOf returns the repository name a /v2/ path is about, "" when none.
func RepositoryOf(path string) string {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return ""
	}
	for _, sep := range []string{"/manifests/", "/blobs/", "/tags/", "/referrers/"} {
		if i := strings.Index(rest, sep); i >= 0 {
			return rest[:i]
		}
	}
	return ""
}
