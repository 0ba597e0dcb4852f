package mirror

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Mirror copies images into a destination registry, once. It is safe for concurrent use; make one
// per process and share it, since its caches and concurrency bounds are per Mirror.
type Mirror struct {
	o         *options
	transport http.RoundTripper
	presence  *presenceCache
	blobs     *blobIndex
	uploads   uploads
	copies    chan struct{} // a slot per copy allowed to run
	flights   flights
}

// New returns a Mirror configured by opts; see the With* options for the defaults.
func New(opts ...Option) (*Mirror, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, fmt.Errorf("configuring mirror: %w", err)
		}
	}
	if o.transport == nil {
		o.transport = defaultTransport()
	}
	presence, err := newPresenceCache(o.cacheSize, o.cacheTTL, o.clock)
	if err != nil {
		return nil, err
	}
	blobs, err := newBlobIndex(o.cacheSize * defaultBlobIndexSizeFactor)
	if err != nil {
		return nil, err
	}
	return &Mirror{
		o:         o,
		transport: newTransport(o.transport, o),
		presence:  presence,
		blobs:     blobs,
		copies:    make(chan struct{}, o.maxCopies),
	}, nil
}

// Resolved is what a manifest HEAD tells about a reference.
type Resolved struct {
	// Digest is the manifest's digest, the image's identity.
	Digest v1.Hash
	// MediaType says whether it is a multi-arch index, an image or a schema 1 manifest.
	MediaType types.MediaType
	// Size is the manifest's size in bytes.
	Size int64
	// RateLimit is the registry's pull quota if its response stated one (Docker Hub does).
	RateLimit *RateLimit
}

// Resolve finds the digest ref points to with one manifest HEAD, using the source keychain.
// It never GETs the manifest: Docker Hub counts every manifest GET against the pull limit but
// not HEADs (https://docs.docker.com/docker-hub/usage/pulls/).
func (m *Mirror) Resolve(ctx context.Context, ref name.Reference) (Resolved, error) {
	ctx, box := withRateLimitBox(ctx)
	return m.resolve(ctx, box, ref, nil)
}

// resolveWith is Resolve with the source client of the Copy in progress, which then reuses the
// ping and token of this HEAD.
func (m *Mirror) resolveWith(ctx context.Context, ref name.Reference, source *lazyRepoClient) (Resolved, error) {
	ctx, box := withRateLimitBox(ctx)
	c, err := source.get(ctx)
	if err != nil {
		return Resolved{RateLimit: box.get()}, fmt.Errorf("resolving %s: %w", ref, explain(err, ref, nil, SideSource))
	}
	return m.resolve(ctx, box, ref, c.puller)
}

// resolve HEADs ref with puller, or a Puller of its own when nil, and reads the rate limit
// headers into box.
func (m *Mirror) resolve(ctx context.Context, box *rateLimitBox, ref name.Reference, puller *remote.Puller) (Resolved, error) {
	opts := m.remoteOptions(ctx, m.o.sourceKeychain)
	if puller != nil {
		opts = append(opts, remote.Reuse(puller))
	}
	desc, err := remote.Head(ref, opts...)
	if err != nil {
		return Resolved{RateLimit: box.get()}, fmt.Errorf("resolving %s: %w", ref, explain(err, ref, nil, SideSource))
	}
	return Resolved{Digest: desc.Digest, MediaType: desc.MediaType, Size: desc.Size, RateLimit: box.get()}, nil
}

// Present reports whether dst holds digest in the destination registry. A cache entry younger than
// the cache TTL answers without any request; otherwise one manifest HEAD does, and its answer
// is cached. With WithDigestTags (the default), when dst holds digest Present also makes sure
// the digest tag does, from the manifest in the registry, so a copy whose source is gone keeps
// its digest past garbage collection too.
func (m *Mirror) Present(ctx context.Context, dst name.Reference, digest v1.Hash) (bool, error) {
	if p, ok := m.presence.fresh(dst); ok && p.digest == digest && m.digestTagged(dst, digest) {
		m.cacheHit(dst)
		return true, nil
	}
	m.cacheMiss(dst)
	desc, err := m.headDestination(ctx, dst)
	if err != nil {
		return false, fmt.Errorf("checking %s in the destination registry: %w", dst, explain(err, nil, dst, SideDestination))
	}
	if desc == nil || desc.Digest != digest {
		return false, nil
	}
	if err := m.ensureDigestTag(ctx, dst, digest, nil); err != nil {
		return false, fmt.Errorf("checking %s in the destination registry: %w", dst, err)
	}
	return true, nil
}

// Forget drops what the Mirror remembers about dst, and about the digest tag of the digest it
// held, e.g. after finding a copy pruned, so that the next Present or Copy asks the registry.
func (m *Mirror) Forget(dst name.Reference) {
	if p, ok := m.presence.entries.Peek(cacheKey(dst)); ok {
		m.presence.remove(dst.Context().Tag(DigestTag(p.digest)))
	}
	m.presence.remove(dst)
}

// DigestTag is the tag WithDigestTags gives an image with digest h: "digest-sha256-<hex>", cut
// to the 128 characters a tag may have.
//
// It is not "sha256-<hex>", the form cosign and the OCI referrers tag schema use: that is the
// tag where a registry without the referrers API keeps the index of the image's referrers
// (see WithReferrers), and one tag cannot hold both the image and that index. Repositories
// written by earlier versions of this package, which used that form, are taken over: the
// first Copy that lists referrers there, with the digest tag in place, writes the index over
// the old tag.
func DigestTag(h v1.Hash) string {
	const maxTagLength = 128
	t := digestTagPrefix + h.Algorithm + "-" + h.Hex
	return t[:min(len(t), maxTagLength)]
}

// digestTagPrefix starts every digest tag.
const digestTagPrefix = "digest-"

// headDestination HEADs dst in the destination registry and caches what it finds. It returns nil, nil
// when dst does not exist. It uses the copy's Puller when ctx carries one (withDestination).
func (m *Mirror) headDestination(ctx context.Context, dst name.Reference) (*v1.Descriptor, error) {
	desc, err := remote.Head(dst, m.destinationOptions(ctx)...)
	if isNotFound(err) {
		m.presence.remove(dst)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m.presence.add(dst, presence{digest: desc.Digest, mediaType: desc.MediaType, size: desc.Size})
	return desc, nil
}

// isNotFound is a 404 for a manifest or repository. Registries answer NAME_UNKNOWN for a
// repository that does not exist yet, MANIFEST_UNKNOWN for a missing tag or digest; a HEAD
// response has no body, so only the status tells.
func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// remoteOptions are the go-containerregistry options of every call: the Mirror's transport,
// the keychain of the side being talked to, the context, and go-containerregistry's retries
// narrowed to what our transport cannot retry (see retryWholeUpload).
func (m *Mirror) remoteOptions(ctx context.Context, kc authn.Keychain) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(m.transport),
		remote.WithAuthFromKeychain(kc),
		remote.WithJobs(m.o.jobs),
		remote.WithUserAgent(m.o.userAgent),
		remote.WithRetryStatusCodes(),
		remote.WithRetryPredicate(retryWholeUpload),
		remote.WithRetryBackoff(m.o.uploadBackoff()),
	}
}

func (m *Mirror) cacheHit(dst name.Reference) {
	if m.o.observer.CacheHit != nil {
		m.o.observer.CacheHit(dst)
	}
}

func (m *Mirror) cacheMiss(dst name.Reference) {
	if m.o.observer.CacheMiss != nil {
		m.o.observer.CacheMiss(dst)
	}
}

// acquire takes one of the WithMaxConcurrentCopies slots, waiting for one if needed.
func (m *Mirror) acquire(ctx context.Context) (release func(), err error) {
	select {
	case m.copies <- struct{}{}:
		return func() { <-m.copies }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a copy slot: %w", ctx.Err())
	}
}

// since measures durations for the Observer, in real time: WithClock is for cache expiry,
// Retry-After dates and retry waits, which tests fake.
func since(t time.Time) time.Duration { return time.Since(t) }
