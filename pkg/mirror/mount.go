package mirror

import (
	"context"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// target is what the image wrappers below need to know about the copy in progress.
type destination struct {
	repo    name.Repository // destination repository
	blobs   *blobIndex
	stats   *copyStats
	schema1 bool // schema 1 manifests do not state blob sizes

	ctx     context.Context // the copy's
	uploads *uploads
	wait    time.Duration // the longest wait for another copy's upload

	mu      sync.Mutex
	claimed map[v1.Hash]*upload // blobs this copy moves
}

// arrived is called when the copy's requests show that the destination repository has h
// (found, mounted or uploaded): from then on other copies mount it from here.
func (t *destination) arrived(h v1.Hash, size int64) {
	t.blobs.add(t.repo, h, size)
	t.mu.Lock()
	u := t.claimed[h]
	t.mu.Unlock()
	if u != nil {
		t.uploads.release(h, u)
	}
}

// releaseAll ends the claims of a copy that is over, whatever moved, so nobody waits on it.
func (t *destination) releaseAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for h, u := range t.claimed {
		t.uploads.release(h, u)
	}
	t.claimed = nil
}

// layer prepares a source layer for remote.Push. go-containerregistry mounts a layer only when
// it is a *remote.MountableLayer whose Reference is in the destination registry (see
// uploadOne in remote/write.go). Source layers come wrapped with the source reference, which
// is of no use for a mount into another registry (and go-containerregistry then sends a
// pointless ?from=<source repository>), so that wrapper is removed; a layer the blob index
// knows in another repository of the destination registry is wrapped with that repository instead.
// A layer that another copy is uploading to another repository right now is wrapped with that
// repository too, and waits for that upload before go-containerregistry mounts it (see
// awaitedLayer).
func (t *destination) layer(l v1.Layer) (v1.Layer, error) {
	if ml, ok := l.(*remote.MountableLayer); ok {
		l = ml.Layer
	}
	h, err := l.Digest()
	if err != nil {
		return nil, err
	}
	mt, err := l.MediaType()
	if err != nil {
		return nil, err
	}
	size := int64(-1)
	if !t.schema1 {
		// The manifest states the size; no request is made.
		d, err := partial.Descriptor(l)
		if err != nil {
			return nil, err
		}
		size = d.Size
	}
	t.stats.addBlob(h, size, !mt.IsDistributable())
	if loc, ok := t.blobs.get(t.repo.Registry, h); ok && loc.repo.String() != t.repo.String() {
		if size < 0 && loc.size >= 0 {
			t.stats.addBlob(h, loc.size, false)
		}
		return &remote.MountableLayer{Layer: l, Reference: loc.repo.Digest(h.String())}, nil
	}
	if t.uploads == nil || !mt.IsDistributable() {
		return l, nil
	}
	other, mine := t.uploads.claim(t.repo, h)
	if other != nil {
		return &remote.MountableLayer{
			Layer:     &awaitedLayer{Layer: l, ctx: t.ctx, done: other.done, limit: t.wait},
			Reference: other.repo.Digest(h.String()),
		}, nil
	}
	t.mu.Lock()
	if t.claimed == nil {
		t.claimed = map[v1.Hash]*upload{}
	}
	t.claimed[h] = mine
	t.mu.Unlock()
	return l, nil
}

func isAwaited(l v1.Layer) bool {
	ml, ok := l.(*remote.MountableLayer)
	if !ok {
		return false
	}
	_, ok = ml.Layer.(*awaitedLayer)
	return ok
}

// mirrorImage is a source image whose layers are prepared by destination.layer. Its manifest is
// the source's raw bytes (RawManifest is the embedded image's), so the digest is preserved.
type mirrorImage struct {
	v1.Image
	t *destination
}

func (i *mirrorImage) Layers() ([]v1.Layer, error) {
	ls, err := i.Image.Layers()
	if err != nil {
		return nil, err
	}
	// go-containerregistry writes layers in this order, a few at a time: the layers this copy
	// moves go first, so that its own uploads never queue behind layers waiting for another
	// copy's (which may be waiting for ours). The manifest is the source's, whatever the order.
	out := make([]v1.Layer, 0, len(ls))
	var awaited []v1.Layer
	for _, l := range ls {
		w, err := i.t.layer(l)
		if err != nil {
			return nil, err
		}
		if isAwaited(w) {
			awaited = append(awaited, w)
			continue
		}
		out = append(out, w)
	}
	return append(out, awaited...), nil
}

func (i *mirrorImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := i.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return i.t.layer(l)
}

// ConfigLayer is what partial.ConfigLayer, and so remote.Push, uses to upload the config blob.
func (i *mirrorImage) ConfigLayer() (v1.Layer, error) {
	l, err := partial.ConfigLayer(i.Image)
	if err != nil {
		return nil, err
	}
	return i.t.layer(l)
}

// Descriptor keeps the descriptor the parent index gave (platform, annotations).
func (i *mirrorImage) Descriptor() (*v1.Descriptor, error) { return partial.Descriptor(i.Image) }

// mirrorIndex is a source index whose children are wrapped too. Its raw manifest is the
// source's, unchanged. (It cannot embed v1.ImageIndex, whose name clashes with the method.)
type mirrorIndex struct {
	idx v1.ImageIndex
	t   *destination
}

var _ v1.ImageIndex = (*mirrorIndex)(nil)

func newMirrorIndex(idx v1.ImageIndex, t *destination) (*mirrorIndex, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range m.Manifests {
		t.stats.addManifest(d.Digest, d.Size)
	}
	return &mirrorIndex{idx: idx, t: t}, nil
}

func (x *mirrorIndex) MediaType() (types.MediaType, error)       { return x.idx.MediaType() }
func (x *mirrorIndex) Digest() (v1.Hash, error)                  { return x.idx.Digest() }
func (x *mirrorIndex) Size() (int64, error)                      { return x.idx.Size() }
func (x *mirrorIndex) IndexManifest() (*v1.IndexManifest, error) { return x.idx.IndexManifest() }
func (x *mirrorIndex) RawManifest() ([]byte, error)              { return x.idx.RawManifest() }
func (x *mirrorIndex) Descriptor() (*v1.Descriptor, error)       { return partial.Descriptor(x.idx) }

func (x *mirrorIndex) Image(h v1.Hash) (v1.Image, error) {
	img, err := x.idx.Image(h)
	if err != nil {
		return nil, err
	}
	return &mirrorImage{Image: img, t: x.t}, nil
}

func (x *mirrorIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	idx, err := x.idx.ImageIndex(h)
	if err != nil {
		return nil, err
	}
	return newMirrorIndex(idx, x.t)
}

type withLayer interface {
	Layer(v1.Hash) (v1.Layer, error)
}

// Layer serves index entries that are neither images nor indexes, which go-containerregistry
// copies as plain blobs (partial.ComputeManifests).
func (x *mirrorIndex) Layer(h v1.Hash) (v1.Layer, error) {
	wl, ok := x.idx.(withLayer)
	if !ok {
		return nil, &unsupportedError{what: "index entry " + h.String() + " is neither an image nor an index"}
	}
	l, err := wl.Layer(h)
	if err != nil {
		return nil, err
	}
	return x.t.layer(l)
}

// unsupportedError is content the Mirror does not know how to copy; Classify calls it
// KindInvalid.
type unsupportedError struct{ what string }

func (e *unsupportedError) Error() string { return e.what + ": it cannot be copied" }
