package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/image-cloner/image-cloner/internal/testenv"
)

// uploads is what a backup registry's access log says was uploaded and mounted.
type uploads struct {
	Bytes         int64 // sizes of the blobs whose upload completed, once per completion
	Blobs         int   // completed uploads
	DistinctBlobs int
	Mounts        int   // cross-repository mounts that succeeded (201)
	MountedBytes  int64 // their sizes
	Unknown       int   // completed uploads of blobs the fleet does not have (should be 0)
	// SignatureBytes and SignatureBlobs count the uploads of signature blobs, apart.
	SignatureBytes int64
	SignatureBlobs int
}

// countUploads reads the access log. The combined log format has no request body size, so an
// upload is counted where it completes, `PUT /v2/<repo>/blobs/uploads/<id>?digest=...` answered
// 201 (or a single POST with ?digest=), and priced at the size of that blob in the fleet.
func countUploads(reqs []testenv.Request, sizes, signatureSizes map[v1.Hash]int64) uploads {
	var u uploads
	distinct := map[string]bool{}
	for _, r := range reqs {
		if r.Status != 201 || !strings.Contains(r.Path, "/blobs/uploads/") {
			continue
		}
		q, err := url.Parse(r.Path)
		if err != nil {
			continue
		}
		values := q.Query()
		switch {
		case (r.Method == "PUT" || r.Method == "POST") && values.Get("digest") != "":
			d := values.Get("digest")
			h, err := v1.NewHash(d)
			if n, ok := signatureSizes[h]; ok && err == nil {
				u.SignatureBlobs++
				u.SignatureBytes += n
				continue
			}
			u.Blobs++
			distinct[d] = true
			size, ok := sizes[h]
			if err != nil || !ok {
				u.Unknown++
				continue
			}
			u.Bytes += size
		case r.Method == "POST" && values.Get("mount") != "":
			u.Mounts++
			if h, err := v1.NewHash(values.Get("mount")); err == nil {
				u.MountedBytes += sizes[h]
			}
		}
	}
	u.DistinctBlobs = len(distinct)
	return u
}

// byMethod counts requests by method, with the GETs of the API root (/v2/, the version check
// and authentication challenge every client starts with, which pulls nothing) apart as
// "GET /v2/", and those of the referrers API (which distribution answers 404) as
// "GET referrers": a registry's pull count and rate limit are about manifest GETs.
func byMethod(reqs []testenv.Request) map[string]int {
	m := map[string]int{}
	for _, r := range reqs {
		switch {
		case r.Method == "GET" && (r.Path == "/v2/" || r.Path == "/v2"):
			m["GET /v2/"]++
		case r.Method == "GET" && strings.Contains(r.Path, "/referrers/"):
			m["GET referrers"]++
		default:
			m[r.Method]++
		}
	}
	return m
}

// byKind counts requests by method and what they address: the /v2/ ping, blobs, uploads,
// manifests, tags lists and referrers. The cold copy's counts say where a tool's round trips go.
func byKind(reqs []testenv.Request) map[string]int {
	m := map[string]int{}
	for _, r := range reqs {
		kind := "other"
		switch p := r.Path; {
		case p == "/v2/" || p == "/v2":
			kind = "/v2/"
		case strings.Contains(p, "/blobs/uploads/"):
			kind = "upload"
		case strings.Contains(p, "/blobs/"):
			kind = "blob"
		case strings.Contains(p, "/manifests/"):
			kind = "manifest"
		case strings.Contains(p, "/referrers/"):
			kind = "referrers"
		case strings.Contains(p, "/tags/list"):
			kind = "tags"
		}
		m[r.Method+" "+kind]++
	}
	return m
}

// checkSignatures counts the fleet's signature tags the destination holds with the source's
// digest.
func checkSignatures(ctx context.Context, f *fleet, dstOf map[string]name.Repository) int {
	n := 0
	for _, s := range f.Signatures {
		repo, ok := dstOf[s.Repo]
		if !ok {
			continue
		}
		if d, err := remote.Head(repo.Tag(s.Tag), remote.WithContext(ctx)); err == nil && d.Digest == s.Digest {
			n++
		}
	}
	return n
}

// checkDigests HEADs every destination tag, and every child of an index by digest, and says
// which do not have the source's digest.
func checkDigests(ctx context.Context, f *fleet, pairs []pair) (bool, []string) {
	var bad []string
	for i, p := range pairs {
		img := f.Images[i]
		ref, err := name.ParseReference(p.dst)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", p.dst, err))
			continue
		}
		desc, err := remote.Head(ref, remote.WithContext(ctx))
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("%s: %v", p.dst, err))
			continue
		case desc.Digest != img.Digest:
			bad = append(bad, fmt.Sprintf("%s: digest %s, source %s", p.dst, desc.Digest, img.Digest))
			continue
		}
		for _, child := range img.Children {
			if _, err := remote.Head(ref.Context().Digest(child.String()), remote.WithContext(ctx)); err != nil {
				bad = append(bad, fmt.Sprintf("%s@%s: %v", ref.Context(), child, err))
			}
		}
	}
	return len(bad) == 0, bad
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}
