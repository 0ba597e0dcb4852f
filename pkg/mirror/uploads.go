package mirror

import (
	"context"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// uploads tracks the blobs that copies of one Mirror are moving into a registry right now.
// Copies that run together often share blobs (images built on the same base), and the blob
// index learns that a repository holds a blob only once the blob is there: without this, every
// copy that starts before the first upload ends uploads the shared base layers again. A copy
// that needs a blob another copy is uploading to another repository of the same registry
// waits for that upload, then mounts the blob (see destination.layer).
type uploads struct {
	mu sync.Mutex
	m  map[blobKey]*upload
}

// upload is one blob being moved into repo by one copy; done is closed when the blob is
// there, or when that copy ends without it.
type upload struct {
	repo name.Repository
	done chan struct{}
	once sync.Once
}

func (u *upload) finish() { u.once.Do(func() { close(u.done) }) }

// claim registers that repo's copy is about to move h, unless a copy into another repository
// of the same registry already is: then it returns that upload to wait for.
func (us *uploads) claim(repo name.Repository, h v1.Hash) (other, mine *upload) {
	key := blobKey{registry: repo.RegistryStr(), digest: h}
	us.mu.Lock()
	defer us.mu.Unlock()
	if u, ok := us.m[key]; ok {
		if u.repo.String() != repo.String() {
			return u, nil
		}
		return nil, u
	}
	if us.m == nil {
		us.m = map[blobKey]*upload{}
	}
	u := &upload{repo: repo, done: make(chan struct{})}
	us.m[key] = u
	return nil, u
}

// release ends u, found done or given up, and forgets it.
func (us *uploads) release(h v1.Hash, u *upload) {
	key := blobKey{registry: u.repo.RegistryStr(), digest: h}
	us.mu.Lock()
	if us.m[key] == u {
		delete(us.m, key)
	}
	us.mu.Unlock()
	u.finish()
}

// awaitedLayer is a layer another copy is uploading to the destination registry. It is given to
// remote.Push wrapped in a *remote.MountableLayer naming that copy's repository, and its
// first method go-containerregistry calls before the existence check and the mount
// (MediaType, then Digest, in repoWriter.writeLayer) waits until that upload ends, so that the
// mount finds the blob. If the upload failed, the mount request is answered with an upload
// session and go-containerregistry uploads the blob itself, as it would have anyway. The wait
// is bounded (by the request timeout) so that two copies waiting on each other's blobs
// cannot stall; destination puts awaited layers after the copy's own so that does not happen.
type awaitedLayer struct {
	v1.Layer
	ctx   context.Context
	done  <-chan struct{}
	limit time.Duration
	once  sync.Once
}

func (l *awaitedLayer) await() {
	l.once.Do(func() {
		t := time.NewTimer(l.limit)
		defer t.Stop()
		select {
		case <-l.done:
		case <-l.ctx.Done():
		case <-t.C:
		}
	})
}

func (l *awaitedLayer) MediaType() (types.MediaType, error) {
	l.await()
	return l.Layer.MediaType()
}

func (l *awaitedLayer) Digest() (v1.Hash, error) {
	l.await()
	return l.Layer.Digest()
}
