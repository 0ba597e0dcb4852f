package mirror

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"
)

// push writes image under dst with the copy's Pusher: what the manifest depends on first (its
// blobs, or the manifests of an index's children, each skipped when the repository has it),
// then the manifest itself. It is go-containerregistry's Pusher.Push without the manifest HEAD
// of dst that Push starts with: ensure made that HEAD a moment ago, in this copy, and found dst
// missing or holding another digest. Were dst written in between, the PUT would write the same
// bytes again; the verify HEAD after the push checks the result either way.
func (m *Mirror) push(ctx context.Context, pusher *remote.Pusher, dst name.Reference, image remote.Taggable) error {
	if err := m.pushDependencies(ctx, pusher, dst.Context(), image); err != nil {
		return err
	}
	if err := pusher.Put(ctx, dst, image); err != nil {
		return fmt.Errorf("writing the manifest: %w", err)
	}
	return nil
}

// pushDependencies writes into repo what image's manifest refers to, WithJobs at a time, the way
// go-containerregistry's Pusher.Push does: an image's layers in order, then its config blob (none
// for schema 1); an index's images and blobs, and its child indexes one after another, depth
// first, so that their own groups of jobs cannot take every slot of this one. Each child
// manifest goes through Pusher.Push by digest, which HEADs it and skips it when the repository
// has it; each blob through Pusher.Upload, which HEADs it and mounts or uploads it if missing.
func (m *Mirror) pushDependencies(ctx context.Context, pusher *remote.Pusher, repo name.Repository, image remote.Taggable) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(m.o.jobs)
	upload := func(l v1.Layer) { g.Go(func() error { return pusher.Upload(gctx, repo, l) }) }
	var err error
	switch x := image.(type) {
	case v1.ImageIndex:
		err = pushChildren(gctx, g, pusher, repo, x, upload)
	case v1.Image:
		err = pushBlobs(x, upload)
	default:
		err = &unsupportedError{what: fmt.Sprintf("a %T is neither an image nor an index", image)}
	}
	if werr := g.Wait(); err == nil {
		err = werr
	}
	return err
}

// pushChildren starts writing the children of idx into repo in g.
func pushChildren(ctx context.Context, g *errgroup.Group, pusher *remote.Pusher, repo name.Repository, idx v1.ImageIndex, upload func(v1.Layer)) error {
	children, err := partial.Manifests(idx)
	if err != nil {
		return fmt.Errorf("reading the index's children: %w", err)
	}
	byDigest := func(child partial.Describable) error {
		h, err := child.Digest()
		if err != nil {
			return err
		}
		return pusher.Push(ctx, repo.Digest(h.String()), child.(remote.Taggable))
	}
	for _, child := range children {
		switch c := child.(type) {
		case v1.ImageIndex:
			if err := byDigest(c); err != nil {
				return err
			}
		case v1.Image:
			g.Go(func() error { return byDigest(c) })
		case v1.Layer:
			upload(c)
		default:
			return &unsupportedError{what: fmt.Sprintf("index entry of type %T", child)}
		}
	}
	return nil
}

// pushBlobs starts writing img's layers, then its config blob, with upload.
func pushBlobs(img v1.Image, upload func(v1.Layer)) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("reading the layers: %w", err)
	}
	for _, l := range layers {
		upload(l)
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	if mt.IsSchema1() {
		return nil
	}
	config, err := partial.ConfigLayer(img)
	if err != nil {
		return fmt.Errorf("reading the config: %w", err)
	}
	upload(config)
	return nil
}
