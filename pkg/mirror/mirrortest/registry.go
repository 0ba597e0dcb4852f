package mirrortest

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Registry is go-containerregistry's in-memory registry (pkg/registry) with two changes that
// make it behave like the CNCF distribution registry where copying tools notice: blobs belong
// to a repository (a blob pushed to one repository is not found in another), and a blob upload
// started with ?mount=<digest>&from=<repository> mounts the blob (201 Created) when the other
// repository has it, instead of always starting an upload (202 Accepted).
//
// Use it with httptest.NewServer, which gives a 127.0.0.1 address that go-containerregistry
// talks to over plain HTTP.
type Registry struct {
	blobs   *repoBlobs
	handler http.Handler
}

// NewRegistry returns an empty Registry. Its request log is discarded unless opts set a
// logger (registry.Logger).
func NewRegistry(opts ...registry.Option) *Registry {
	b := &repoBlobs{m: map[string]map[v1.Hash][]byte{}}
	all := append([]registry.Option{registry.Logger(log.New(io.Discard, "", 0)), registry.WithBlobHandler(b)}, opts...)
	return &Registry{blobs: b, handler: registry.New(all...)}
}

// ServeHTTP implements http.Handler.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	if req.Method == http.MethodPost && KindOf(req.URL.Path) == KindUpload && q.Get("mount") != "" && q.Get("from") != "" {
		if h, err := v1.NewHash(q.Get("mount")); err == nil {
			repo := RepositoryOf(req.URL.Path)
			if r.blobs.mount(q.Get("from"), repo, h) {
				w.Header().Set("Location", "/v2/"+repo+"/blobs/"+h.String())
				w.Header().Set("Docker-Content-Digest", h.String())
				w.WriteHeader(http.StatusCreated)
				return
			}
		}
	}
	r.handler.ServeHTTP(w, req)
}

// HasBlob reports whether repository holds the blob.
func (r *Registry) HasBlob(repository string, h v1.Hash) bool {
	_, ok := r.blobs.get(repository, h)
	return ok
}

// repoBlobs implements registry.BlobHandler (and Stat, Put, Delete) per repository.
type repoBlobs struct {
	mu sync.Mutex
	m  map[string]map[v1.Hash][]byte
}

// repoKey undoes a quirk of pkg/registry, which names the repository of an upload's final PUT
// (/v2/<name>/blobs/uploads/<id>) "<name>/blobs".
func repoKey(repo string) string { return strings.TrimSuffix(repo, "/blobs") }

func (b *repoBlobs) get(repo string, h v1.Hash) ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	data, ok := b.m[repoKey(repo)][h]
	return data, ok
}

func (b *repoBlobs) mount(from, to string, h v1.Hash) bool {
	data, ok := b.get(from, h)
	if !ok {
		return false
	}
	b.put(to, h, data)
	return true
}

func (b *repoBlobs) put(repo string, h v1.Hash, data []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	repo = repoKey(repo)
	if b.m[repo] == nil {
		b.m[repo] = map[v1.Hash][]byte{}
	}
	b.m[repo][h] = data
}

func (b *repoBlobs) Stat(_ context.Context, repo string, h v1.Hash) (int64, error) {
	data, ok := b.get(repo, h)
	if !ok {
		return 0, registry.ErrNotFound
	}
	return int64(len(data)), nil
}

func (b *repoBlobs) Get(_ context.Context, repo string, h v1.Hash) (io.ReadCloser, error) {
	data, ok := b.get(repo, h)
	if !ok {
		return nil, registry.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (b *repoBlobs) Put(_ context.Context, repo string, h v1.Hash, rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	b.put(repo, h, data)
	return nil
}

func (b *repoBlobs) Delete(_ context.Context, repo string, h v1.Hash) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	repo = repoKey(repo)
	if _, ok := b.m[repo][h]; !ok {
		return registry.ErrNotFound
	}
	delete(b.m[repo], h)
	return nil
}
