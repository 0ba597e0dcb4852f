package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Result describes what a Copy did.
type Result struct {
	// Digest is the image's digest, the same in the source and the destination.
	Digest v1.Hash
	// MediaType is the top manifest's media type (index, image or schema 1).
	MediaType types.MediaType
	// Size is the bytes of the manifests and distinct blobs the copy dealt with. Manifests
	// whose content was already in the destination registry count only their own size, and an
	// AlreadyPresent image found by one HEAD counts its top manifest only (or what an earlier
	// copy by this Mirror counted).
	Size int64
	// BytesUploaded and BlobsUploaded count the blobs uploaded to the destination registry.
	BytesUploaded int64
	BlobsUploaded int
	// BytesMounted and BlobsMounted count the blobs mounted from another repository of the
	// destination registry instead of being uploaded.
	BytesMounted int64
	BlobsMounted int
	// BlobsSkipped counts blobs found already in the destination repository. (The blobs of a
	// child manifest that is already there are not looked at, nor counted.)
	BlobsSkipped int
	// BlobsForeign counts foreign (non-distributable) layers, which are never copied; see the
	// package documentation.
	BlobsForeign int
	// CacheHit is true when the presence cache answered: no request was made to the
	// destination registry.
	CacheHit bool
	// AlreadyPresent is true when the destination registry was asked and already had the image.
	AlreadyPresent bool
	// Shared is true when another Copy call did the work and this one shared its outcome. The
	// counts are that call's, so add up only results that are not Shared.
	Shared bool
	// Referrers counts the signatures, attestations, SBOMs and other referrers the copy dealt
	// with (WithReferrers); zero on a cache hit. Their bytes are not in the counts above.
	Referrers Referrers
}

// Copy makes dst, in the destination registry, hold the image src points to, unchanged: same
// manifests, same digest, every platform of a multi-arch index.
//
// In order, stopping as soon as the answer is known:
//  1. src is resolved to a digest with one HEAD (no request if src is a digest reference);
//  2. the presence cache may know that dst holds that digest: CacheHit, no request at all;
//  3. one HEAD of dst may show it holds that digest: AlreadyPresent;
//  4. otherwise the image is copied and the result verified with a HEAD of dst.
//
// After 3 or 4, the image's referrers are copied (WithReferrers): the presence cache only
// answers for an image whose referrers a Copy copied.
//
// Concurrent calls for the same digest and destination repository share one copy. dst may be a
// tag or a digest reference; a digest reference must name src's digest.
func (m *Mirror) Copy(ctx context.Context, src, dst name.Reference) (res Result, err error) {
	start := time.Now()
	defer func() {
		if m.o.observer.CopyFinished != nil {
			m.o.observer.CopyFinished(src, dst, res, err, since(start))
		}
	}()

	// One source client for the whole copy: the Resolve HEAD, the copy's GETs and the
	// referrers' lookups share its ping and token instead of each making their own.
	source := &lazyRepoClient{make: func(ctx context.Context) (*repoClient, error) {
		return m.newRepoClient(ctx, src.Context(), m.o.sourceKeychain, transport.PullScope)
	}}
	var digest v1.Hash
	if d, ok := src.(name.Digest); ok {
		digest, err = v1.NewHash(d.DigestStr())
		if err != nil {
			return Result{}, fmt.Errorf("copying %s: %w", src, err)
		}
	} else {
		r, err := m.resolveWith(ctx, src, source)
		if err != nil {
			return Result{}, fmt.Errorf("copying %s to %s: %w", src, dst, err)
		}
		digest = r.Digest
	}
	if d, ok := dst.(name.Digest); ok && d.DigestStr() != digest.String() {
		return Result{Digest: digest}, fmt.Errorf("copying %s to %s: %w", src, dst, &unsupportedError{
			what: fmt.Sprintf("the destination names digest %s but the source is %s", d.DigestStr(), digest)})
	}

	if p, ok := m.presence.fresh(dst); ok && p.digest == digest && m.digestTagged(dst, digest) && (p.referrers || !m.o.referrers) {
		m.cacheHit(dst)
		m.o.logger.V(1).Info("Skipping copy: destination known present", "source", src.String(), "destination", dst.String(), "digest", digest.String())
		return Result{Digest: digest, MediaType: p.mediaType, Size: p.size, CacheHit: true}, nil
	}
	m.cacheMiss(dst)

	// Pin the digest: if the tag moves while we copy, we still copy what we resolved.
	job := copyJob{src: src, pinned: src.Context().Digest(digest.String()), dst: dst, digest: digest, source: source}
	key := dst.Context().Name() + "@" + digest.String()
	v, led, err := m.flights.do(ctx, key, func(ctx context.Context) (any, error) {
		r, err := m.ensure(ctx, job)
		return flightResult{result: r, dst: dst}, err
	})
	if err != nil {
		return Result{Digest: digest}, fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	fr := v.(flightResult)
	if led {
		return fr.result, nil
	}
	if fr.dst.Name() == dst.Name() {
		shared := fr.result
		shared.Shared = true
		return shared, nil
	}
	// Another call copied the same digest into this repository under another tag: the
	// content is there, only this tag is missing.
	res, err = m.retag(ctx, dst, digest, fr.result)
	if err != nil {
		return res, fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return res, nil
}

type flightResult struct {
	result Result
	dst    name.Reference
}

// copyJob is one image to copy.
type copyJob struct {
	src    name.Reference // as the caller gave it, for messages
	pinned name.Digest    // src at the digest it resolved to, what is copied
	dst    name.Reference
	digest v1.Hash
	source *lazyRepoClient // the Copy call's, which resolved src

	// The destination's clients, made by ensure for all its requests: the HEAD that checks
	// the destination, the push, the verify HEAD, the digest tag and the referrers.
	pusher      *remote.Pusher
	destination *repoClient
}

// ensure is steps 3 and 4 of Copy, run once per destination repository and digest at a time.
// Its requests to the destination share one Pusher and one Puller (withDestination), so the
// HEAD that finds the image missing and the calls after it ping and authenticate once.
func (m *Mirror) ensure(ctx context.Context, job copyJob) (Result, error) {
	src, dst, digest := job.pinned, job.dst, job.digest
	var err error
	if job.pusher, err = remote.NewPusher(m.remoteOptions(ctx, m.o.dstKeychain)...); err != nil {
		return Result{Digest: digest}, err
	}
	// Push scope from the start: the referrers' API client writes manifests with it.
	if job.destination, err = m.newRepoClient(ctx, dst.Context(), m.o.dstKeychain, transport.PushScope); err != nil {
		return Result{Digest: digest}, fmt.Errorf("checking the destination: %w", explain(err, nil, dst, SideDestination))
	}
	ctx = withDestination(ctx, job.pusher, job.destination.puller)
	desc, err := m.headDestination(ctx, dst)
	if err != nil {
		return Result{Digest: digest}, fmt.Errorf("checking the destination: %w", explain(err, nil, dst, SideDestination))
	}
	if desc != nil && desc.Digest == digest {
		p, _ := m.presence.entries.Peek(cacheKey(dst))
		m.o.logger.V(1).Info("Skipping copy: destination present", "source", src.String(), "destination", dst.String(), "digest", digest.String())
		res := Result{Digest: digest, MediaType: desc.MediaType, Size: max(p.size, desc.Size), AlreadyPresent: true}
		if err := m.ensureDigestTag(ctx, dst, digest, nil); err != nil {
			return res, err
		}
		return m.copyReferrers(ctx, job, res, nil)
	}

	release, err := m.acquire(ctx)
	if err != nil {
		return Result{Digest: digest}, err
	}
	defer release()
	if m.o.observer.CopyStarted != nil {
		m.o.observer.CopyStarted(src, dst)
	}
	m.o.logger.Info("Copying image", "source", src.String(), "destination", dst.String(), "digest", digest.String())
	res, manifest, err := m.copyImage(ctx, job)
	if err == nil {
		res, err = m.copyReferrers(ctx, job, res, manifest)
	}
	if m.o.observer.CopyEnded != nil {
		m.o.observer.CopyEnded(src, dst, err)
	}
	if err != nil {
		return res, err
	}
	m.o.logger.Info("Copied image", "source", src.String(), "destination", dst.String(), "digest", digest.String(),
		"size", res.Size, "bytesUploaded", res.BytesUploaded, "bytesMounted", res.BytesMounted,
		"blobsUploaded", res.BlobsUploaded, "blobsMounted", res.BlobsMounted, "blobsSkipped", res.BlobsSkipped,
		"referrersFound", res.Referrers.Found, "referrersCopied", res.Referrers.Copied)
	return res, nil
}

// copyReferrers copies the referrers of the image job copied (or found present), with
// WithReferrers, and records in the presence cache that they are there.
func (m *Mirror) copyReferrers(ctx context.Context, job copyJob, res Result, manifest []byte) (Result, error) {
	if !m.o.referrers {
		return res, nil
	}
	r, err := m.syncReferrers(ctx, job, res.MediaType, manifest)
	res.Referrers = r
	if err != nil {
		return res, err
	}
	m.presence.referrersCopied(job.dst, job.digest)
	return res, nil
}

// copyImage copies the whole image src into dst with the copy's Pusher (push), fed with the
// source's manifests unchanged (so digests are preserved) and layers prepared for
// cross-repository mounts. Pushers and Pullers live for one copy only: their internal maps
// (per repository, per digest) never shrink, so sharing them would leak in a long-running process.
// The source Puller is the one Copy resolved src with (job.source), the destination's the
// one ensure checked dst with.
func (m *Mirror) copyImage(ctx context.Context, job copyJob) (Result, []byte, error) {
	src, dst, digest := job.pinned, job.dst, job.digest
	res := Result{Digest: digest}
	st := newCopyStats(dst.Context(), m.o.observer)
	ctx = withStats(ctx, st)

	source, err := job.source.get(ctx)
	if err != nil {
		return res, nil, fmt.Errorf("fetching the manifest: %w", explain(err, src, nil, SideSource))
	}
	desc, err := source.puller.Get(ctx, src)
	if err != nil {
		return res, nil, fmt.Errorf("fetching the manifest: %w", explain(err, src, nil, SideSource))
	}
	// go-containerregistry decodes manifests with a json.Decoder, whose error for a truncated
	// document (io.ErrUnexpectedEOF) reads like a connection cut mid-body; json.Unmarshal
	// reports it as the syntax error it is, so the source gets the blame and the advice.
	var probe json.RawMessage
	if err := json.Unmarshal(desc.Manifest, &probe); err != nil {
		return res, nil, fmt.Errorf("fetching the manifest: %w", explain(err, src, nil, SideSource))
	}
	res.MediaType = desc.MediaType
	st.addManifest(desc.Digest, desc.Size)

	t := &destination{repo: dst.Context(), blobs: m.blobs, stats: st, schema1: desc.MediaType.IsSchema1(),
		ctx: ctx, uploads: &m.uploads, wait: m.o.requestTimeout}
	defer t.releaseAll()
	st.arrived = t.arrived
	var image remote.Taggable
	switch mt := desc.MediaType; {
	case mt.IsIndex():
		idx, err := desc.ImageIndex()
		if err == nil {
			image, err = newMirrorIndex(idx, t)
		}
		if err != nil {
			return res, nil, fmt.Errorf("reading the index: %w", explain(err, src, nil, SideSource))
		}
	case mt.IsImage():
		img, err := desc.Image()
		if err != nil {
			return res, nil, fmt.Errorf("reading the image: %w", explain(err, src, nil, SideSource))
		}
		image = &mirrorImage{Image: img, t: t}
	case mt.IsSchema1():
		// Schema1 gives the fsLayers as layers and the raw (possibly signed) manifest.
		img, err := desc.Schema1()
		if err != nil {
			return res, nil, fmt.Errorf("reading the schema 1 manifest: %w", explain(err, src, nil, SideSource))
		}
		image = &mirrorImage{Image: img, t: t}
	default:
		return res, nil, &unsupportedError{what: fmt.Sprintf("manifest media type %q is not an image, an index or schema 1", mt)}
	}

	// The push, the verify HEAD and the digest tag reuse the transports of the HEAD that
	// found dst missing (ensure): each would otherwise ping the registry and fetch a token
	// of its own.
	if err := m.push(ctx, job.pusher, dst, image); err != nil {
		if t.schema1 && isManifestRefused(err) {
			return res, nil, &Schema1Error{Source: job.src.String(), Destination: dst.Context().RegistryStr(), Reason: registryMessage(err), err: err}
		}
		return res, nil, fmt.Errorf("pushing: %w", explain(err, src, dst, SideDestination))
	}
	if err := m.verify(ctx, dst, digest); err != nil {
		return res, nil, err
	}
	st.result(&res)
	m.presence.add(dst, presence{digest: digest, mediaType: res.MediaType, size: res.Size})
	// The manifest is at hand: the digest tag costs one PUT, no HEAD or read-back.
	if err := m.ensureDigestTag(ctx, dst, digest, desc); err != nil {
		return res, nil, err
	}
	for h, size := range st.present() {
		m.blobs.add(dst.Context(), h, size)
	}
	return res, desc.Manifest, nil
}

// verify checks with a HEAD that dst now holds digest.
func (m *Mirror) verify(ctx context.Context, dst name.Reference, digest v1.Hash) error {
	got, err := remote.Head(dst, m.destinationOptions(ctx)...)
	if err != nil {
		return fmt.Errorf("verifying the copy: %w", explain(err, nil, dst, SideDestination))
	}
	if got.Digest != digest {
		m.presence.remove(dst)
		return &DigestMismatchError{Reference: dst.String(), Want: digest, Got: got.Digest}
	}
	return nil
}

// retag makes dst point at digest, which another copy just put into dst's repository (and
// tagged by digest): only this tag is missing.
func (m *Mirror) retag(ctx context.Context, dst name.Reference, digest v1.Hash, shared Result) (Result, error) {
	res := Result{Digest: digest, MediaType: shared.MediaType, Size: shared.Size, Shared: true}
	present, err := m.tag(ctx, dst, digest, res.MediaType, res.Size, nil)
	res.AlreadyPresent = present
	return res, err
}

// ensureDigestTag makes DigestTag(digest) in dst's repository point at digest (see
// WithDigestTags). manifest is the image's manifest if the caller has it; nil reads it back
// from the repository when the tag is missing.
func (m *Mirror) ensureDigestTag(ctx context.Context, dst name.Reference, digest v1.Hash, manifest remote.Taggable) error {
	if !m.o.digestTags {
		return nil
	}
	anchor := dst.Context().Tag(DigestTag(digest))
	if anchor.Name() == dst.Name() {
		return nil // dst is the digest tag: a source pinned by digest alone
	}
	if p, ok := m.presence.fresh(anchor); ok && p.digest == digest {
		return nil
	}
	p, _ := m.presence.entries.Peek(cacheKey(dst))
	if _, err := m.tag(ctx, anchor, digest, p.mediaType, p.size, manifest); err != nil {
		return fmt.Errorf("tagging the copy by its digest as %s: %w", anchor.TagStr(), err)
	}
	return nil
}

// digestTagged reports whether the presence cache knows dst's digest tag to be in place (or
// there is none to keep).
func (m *Mirror) digestTagged(dst name.Reference, digest v1.Hash) bool {
	if !m.o.digestTags {
		return true
	}
	anchor := dst.Context().Tag(DigestTag(digest))
	if anchor.Name() == dst.Name() {
		return true
	}
	p, ok := m.presence.fresh(anchor)
	return ok && p.digest == digest
}

// tag makes ref point at digest, a manifest already in ref's repository, and reports whether
// ref already held it. With manifest nil it asks first (a HEAD) and reads the manifest back
// from the destination registry (not the source: no pull is spent); with the manifest at hand it
// PUTs it at once. Either way a HEAD verifies the result.
func (m *Mirror) tag(ctx context.Context, ref name.Reference, digest v1.Hash, mediaType types.MediaType, size int64, manifest remote.Taggable) (bool, error) {
	opts := m.destinationOptions(ctx)
	if manifest == nil {
		desc, err := m.headDestination(ctx, ref)
		if err != nil {
			return false, fmt.Errorf("checking the destination: %w", explain(err, nil, ref, SideDestination))
		}
		if desc != nil && desc.Digest == digest {
			return true, nil
		}
		got, err := remote.Get(ref.Context().Digest(digest.String()), opts...)
		if err != nil {
			return false, fmt.Errorf("reading %s back from the destination registry: %w", digest, explain(err, nil, ref, SideDestination))
		}
		manifest = got
		if mediaType == "" {
			mediaType = got.MediaType
		}
	}
	if err := remote.Put(ref, manifest, opts...); err != nil {
		return false, fmt.Errorf("tagging: %w", explain(err, nil, ref, SideDestination))
	}
	if err := m.verify(ctx, ref, digest); err != nil {
		return false, err
	}
	m.presence.add(ref, presence{digest: digest, mediaType: mediaType, size: size})
	return false, nil
}

// isManifestRefused is a manifest PUT the registry rejected as such (400 MANIFEST_INVALID,
// 415 Unsupported Media Type, UNSUPPORTED...), as opposed to auth, rate or server trouble.
func isManifestRefused(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) || te.Request == nil || te.Request.Method != http.MethodPut ||
		!strings.Contains(te.Request.URL.Path, "/manifests/") {
		return false
	}
	switch te.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusTooManyRequests:
		return false
	}
	return te.StatusCode >= 400 && te.StatusCode < 500
}

// registryMessage is what the registry said in an error response, without the request line.
func registryMessage(err error) string {
	var te *transport.Error
	if !errors.As(err, &te) {
		return err.Error()
	}
	if len(te.Errors) == 0 {
		return fmt.Sprintf("%d %s", te.StatusCode, http.StatusText(te.StatusCode))
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, d := range te.Errors {
		msgs = append(msgs, d.String())
	}
	return strings.Join(msgs, "; ")
}

// reusedClients are the Pusher and Puller of the copy in progress, which the calls to the
// destination that follow the push reuse (remote.Reuse).
type reusedClients struct {
	pusher *remote.Pusher
	puller *remote.Puller
}

type destinationKey struct{}

func withDestination(ctx context.Context, pusher *remote.Pusher, puller *remote.Puller) context.Context {
	return context.WithValue(ctx, destinationKey{}, reusedClients{pusher: pusher, puller: puller})
}

// destinationOptions are remoteOptions for the destination, reusing the copy's Pusher and
// Puller when ctx carries them (withDestination).
func (m *Mirror) destinationOptions(ctx context.Context) []remote.Option {
	opts := m.remoteOptions(ctx, m.o.dstKeychain)
	if d, ok := ctx.Value(destinationKey{}).(reusedClients); ok {
		opts = append(opts, remote.Reuse(d.pusher), remote.Reuse(d.puller))
	}
	return opts
}
