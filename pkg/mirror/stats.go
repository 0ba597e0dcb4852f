package mirror

import (
	"context"
	"net/http"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// copyStats accounts for one copy: which blobs the manifests reference, and which of them were
// found in the destination (HEAD 200), mounted from another repository (POST ?mount= answered
// 201) or uploaded (commit PUT answered 201). go-containerregistry does the transfers and does
// not report this, so the instrumenting transport reads it off the requests of the copy, which
// carry the copyStats in their context.
type copyStats struct {
	host      string // the destination registry's host
	blobsPath string // "/v2/<repository>/blobs/"
	obs       Observer
	// arrived, when set, is told of each blob the destination repository turns out to hold
	// (found, mounted or uploaded), as soon as the response says so.
	arrived func(h v1.Hash, size int64)

	mu        sync.Mutex
	sizes     map[v1.Hash]int64 // every blob referenced, -1 when the manifest does not say
	foreign   map[v1.Hash]bool
	manifests map[v1.Hash]int64
	skipped   map[v1.Hash]bool
	mounted   map[v1.Hash]int64
	uploaded  map[v1.Hash]int64
	sent      map[string]int64 // upload session path -> bytes PATCHed
}

func newCopyStats(dst name.Repository, obs Observer) *copyStats {
	return &copyStats{
		host:      dst.RegistryStr(),
		blobsPath: "/v2/" + dst.RepositoryStr() + "/blobs/",
		obs:       obs,
		sizes:     map[v1.Hash]int64{},
		foreign:   map[v1.Hash]bool{},
		manifests: map[v1.Hash]int64{},
		skipped:   map[v1.Hash]bool{},
		mounted:   map[v1.Hash]int64{},
		uploaded:  map[v1.Hash]int64{},
		sent:      map[string]int64{},
	}
}

func withStats(ctx context.Context, st *copyStats) context.Context {
	return context.WithValue(ctx, statsKey, st)
}

func statsFrom(ctx context.Context) *copyStats {
	st, _ := ctx.Value(statsKey).(*copyStats)
	return st
}

func (s *copyStats) addManifest(h v1.Hash, size int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.manifests[h] = size
}

func (s *copyStats) addBlob(h v1.Hash, size int64, foreign bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.sizes[h]; !ok || old < 0 {
		s.sizes[h] = size
	}
	if foreign {
		s.foreign[h] = true
	}
}

// observe accounts for one response of the destination registry.
func (s *copyStats) observe(req *http.Request, resp *http.Response, sentBytes int64) {
	if !hostMatches(req.URL.Host, s.host) || !strings.HasPrefix(req.URL.Path, s.blobsPath) {
		return
	}
	rest := strings.TrimPrefix(req.URL.Path, s.blobsPath)
	uploads := strings.HasPrefix(rest, "uploads/")
	var digest string
	switch {
	case req.Method == http.MethodHead && !uploads && resp.StatusCode == http.StatusOK:
		digest = rest
	case req.Method == http.MethodPost && uploads && resp.StatusCode == http.StatusCreated:
		digest = req.URL.Query().Get("mount")
	case req.Method == http.MethodPatch && uploads && resp.StatusCode < 300 && sentBytes >= 0:
		s.mu.Lock()
		s.sent[req.URL.Path] += sentBytes
		s.mu.Unlock()
		return
	case req.Method == http.MethodPut && uploads && resp.StatusCode == http.StatusCreated:
		digest = req.URL.Query().Get("digest")
	default:
		return
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		return
	}
	s.mu.Lock()
	size, known := s.sizes[h]
	if !known || size < 0 {
		size = 0
	}
	var notify func(int64)
	switch req.Method {
	case http.MethodHead:
		s.skipped[h] = true
	case http.MethodPost:
		s.mounted[h] = size
		notify = s.obs.BytesMounted
	case http.MethodPut:
		if n, ok := s.sent[req.URL.Path]; ok && (!known || size <= 0) {
			size = n
			s.sizes[h] = n
		}
		delete(s.sent, req.URL.Path)
		s.uploaded[h] = size
		notify = s.obs.BytesUploaded
	}
	arrived, arrivedSize := s.arrived, s.sizes[h]
	if s.foreign[h] {
		arrived = nil
	}
	if _, ok := s.sizes[h]; !ok {
		arrivedSize = -1
	}
	s.mu.Unlock()
	if notify != nil {
		notify(size)
	}
	if arrived != nil {
		arrived(h, arrivedSize)
	}
}

// result fills the counters of r.
func (s *copyStats) result(r *Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Size = 0
	for _, n := range s.manifests {
		r.Size += n
	}
	for _, n := range s.sizes {
		if n > 0 {
			r.Size += n
		}
	}
	for _, n := range s.uploaded {
		r.BytesUploaded += n
		r.BlobsUploaded++
	}
	for h, n := range s.mounted {
		if _, up := s.uploaded[h]; !up {
			r.BytesMounted += n
			r.BlobsMounted++
		}
	}
	for h := range s.skipped {
		_, up := s.uploaded[h]
		_, mo := s.mounted[h]
		if !up && !mo {
			r.BlobsSkipped++
		}
	}
	r.BlobsForeign = len(s.foreign)
}

// present lists the distributable blobs the destination now holds with their sizes (-1 when
// unknown), to remember them as mount sources.
func (s *copyStats) present() map[v1.Hash]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[v1.Hash]int64, len(s.sizes))
	for h, n := range s.sizes {
		if !s.foreign[h] {
			out[h] = n
		}
	}
	return out
}
