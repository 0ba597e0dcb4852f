package mirror

import (
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	lru "github.com/hashicorp/golang-lru/v2"
)

// presenceCache remembers which digest each destination reference (repository plus tag or
// digest) was seen to hold, and when. Entries older than the TTL are not trusted: copies get
// pruned (retention policies, people) and a stale "it's there" sends whoever pulls the copy
// into a failed pull, so after the TTL one HEAD confirms the entry again.
//
// It is golang-lru's Cache with the TTL checked on read rather than golang-lru's expirable
// package, so that the clock can be injected in tests.
type presenceCache struct {
	entries *lru.Cache[string, presence]
	ttl     time.Duration
	clock   Clock
}

type presence struct {
	digest    v1.Hash
	mediaType types.MediaType
	size      int64 // Result.Size of the copy that put it there, or the manifest size
	// referrers is true once a Copy copied the digest's referrers there (WithReferrers).
	referrers bool
	verified  time.Time
}

func newPresenceCache(size int, ttl time.Duration, clock Clock) (*presenceCache, error) {
	c, err := lru.New[string, presence](size)
	if err != nil {
		return nil, fmt.Errorf("creating the presence cache: %w", err)
	}
	return &presenceCache{entries: c, ttl: ttl, clock: clock}, nil
}

// cacheKey is the fully qualified reference, e.g. "quay.io/acme/nginx:1.25".
func cacheKey(ref name.Reference) string { return ref.Name() }

// fresh returns the entry for ref if it was verified less than the TTL ago.
func (c *presenceCache) fresh(ref name.Reference) (presence, bool) {
	p, ok := c.entries.Get(cacheKey(ref))
	if !ok {
		return presence{}, false
	}
	if c.clock.Now().Sub(p.verified) >= c.ttl {
		return p, false
	}
	return p, true
}

// add records that ref holds p.digest, as of now. A size learnt by a copy outlives the
// manifest size a later HEAD reports for the same digest, and so do copied referrers.
func (c *presenceCache) add(ref name.Reference, p presence) {
	p.verified = c.clock.Now()
	if old, ok := c.entries.Peek(cacheKey(ref)); ok && old.digest == p.digest {
		p.size = max(p.size, old.size)
		p.referrers = p.referrers || old.referrers
	}
	c.entries.Add(cacheKey(ref), p)
}

// referrersCopied records that ref's referrers were copied, if ref still holds digest.
func (c *presenceCache) referrersCopied(ref name.Reference, digest v1.Hash) {
	if p, ok := c.entries.Peek(cacheKey(ref)); ok && p.digest == digest {
		p.referrers = true
		c.entries.Add(cacheKey(ref), p)
	}
}

func (c *presenceCache) remove(ref name.Reference) { c.entries.Remove(cacheKey(ref)) }

// blobIndex remembers, per registry, one repository known to hold each blob, so that a copy
// into another repository of the same registry can mount the blob (a POST with ?mount=&from=,
// no bytes moved) instead of uploading it. A wrong entry costs nothing but the mount attempt:
// registries answer 202 and the upload proceeds as usual.
type blobIndex struct {
	entries *lru.Cache[blobKey, blobLocation]
}

type blobKey struct {
	registry string
	digest   v1.Hash
}

type blobLocation struct {
	repo name.Repository
	size int64
}

func newBlobIndex(size int) (*blobIndex, error) {
	c, err := lru.New[blobKey, blobLocation](size)
	if err != nil {
		return nil, fmt.Errorf("creating the blob index: %w", err)
	}
	return &blobIndex{entries: c}, nil
}

func (b *blobIndex) get(reg name.Registry, h v1.Hash) (blobLocation, bool) {
	return b.entries.Get(blobKey{registry: reg.RegistryStr(), digest: h})
}

func (b *blobIndex) add(repo name.Repository, h v1.Hash, size int64) {
	b.entries.Add(blobKey{registry: repo.RegistryStr(), digest: h}, blobLocation{repo: repo, size: size})
}
