package mirror

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Defaults of the options below.
const (
	DefaultJobs                = 4
	DefaultMaxConcurrentCopies = 5
	DefaultCacheSize           = 4096
	DefaultCacheTTL            = 10 * time.Minute
	DefaultRequestTimeout      = 2 * time.Minute
	DefaultRetryMaxAttempts    = 5
	DefaultRetryBaseDelay      = 500 * time.Millisecond
	DefaultRetryMaxDelay       = 30 * time.Second
)

const (
	// The blob index holds this many digests per presence cache entry: images have a few
	// blobs each.
	defaultBlobIndexSizeFactor = 4
	// Backoff doubles per attempt; the upper half of each wait is random.
	defaultRetryBackoffMultiple = 2
	defaultRetryJitterFraction  = 0.5
)

// Option configures a Mirror made by New.
type Option func(*options) error

type options struct {
	transport      http.RoundTripper
	sourceKeychain authn.Keychain
	dstKeychain    authn.Keychain
	jobs           int
	maxCopies      int
	cacheSize      int
	cacheTTL       time.Duration
	requestTimeout time.Duration
	maxAttempts    int
	baseDelay      time.Duration
	maxDelay       time.Duration
	observer       Observer
	logger         logr.Logger
	clock          Clock
	userAgent      string
	digestTags     bool
	referrers      bool
}

func defaultOptions() *options {
	return &options{
		sourceKeychain: anonymousKeychain{},
		dstKeychain:    anonymousKeychain{},
		jobs:           DefaultJobs,
		maxCopies:      DefaultMaxConcurrentCopies,
		cacheSize:      DefaultCacheSize,
		cacheTTL:       DefaultCacheTTL,
		requestTimeout: DefaultRequestTimeout,
		maxAttempts:    DefaultRetryMaxAttempts,
		baseDelay:      DefaultRetryBaseDelay,
		maxDelay:       DefaultRetryMaxDelay,
		logger:         logr.Discard(),
		clock:          realClock{},
		digestTags:     true,
		referrers:      true,
	}
}

// WithDigestTags makes Copy tag every image it puts into a destination repository with its digest
// as well, as DigestTag(digest) (digest-sha256-<hex>), and Present make sure that tag is there.
//
// Registries garbage-collect manifests that no tag points to: distribution's
// garbage-collect --delete-untagged, quay.io, Harbor, ECR lifecycle rules. When the tag a copy
// was made under later points at another image, the digest tag keeps the old image, which
// workloads pinned to it by digest still pull. Costs one manifest HEAD per copy, and a PUT of
// a manifest already in the registry when the tag is missing.
//
// The default is true.
func WithDigestTags(on bool) Option {
	return func(o *options) error {
		o.digestTags = on
		return nil
	}
}

// WithReferrers makes Copy copy, with each image, what refers to it in its source repository:
// cosign's signatures, attestations and SBOMs under their tags (sha256-<hex>.sig, .att, .sbom),
// and OCI 1.1 referrers (manifests whose subject is the image: cosign's sigstore bundles,
// Notation signatures, SBOMs attached with ORAS ...), for the image, for each image of an index,
// and for those referrers in turn. They are copied byte for byte into the destination
// repository, under the same tags or listed as referrers there (by the referrers API where the
// registry has one, by the referrers tag schema where it has not), so a signature made for the
// source verifies against the copy.
//
// A Copy that reaches the registries (not a cache hit) looks for new ones each time: they are
// often added after the image. The image counts as copied only with its referrers: when one
// that the source has cannot be copied, or listed, Copy fails with a *ReferrersError (the
// image itself is in the destination by then). A source without any is not an error. The
// costs: three manifest HEADs and a referrers request on the source per image (and per image
// of an index), and, for what it finds, a HEAD or a referrers request on the destination.
//
// On a destination registry without the referrers API, the referrers of an image are listed in
// an index tagged sha256-<hex>, beside the image's digest tag (digest-sha256-<hex>). When that
// tag holds something else than such an index (another tool's manifest), it is left alone and
// OCI referrers of that image make Copy fail with a ReferrersError that says so; cosign's tags
// are not affected. The old digest tag of an earlier version, which held the image itself
// there, is written over once the new digest tag is in place.
//
// The default is true.
func WithReferrers(on bool) Option {
	return func(o *options) error {
		o.referrers = on
		return nil
	}
}

// WithTransport sets the http.RoundTripper that carries every request. The Mirror wraps it with
// its own timeouts, retries and instrumentation, so pass a plain transport (proxy, TLS settings),
// not one that retries.
//
// The default is a clone of go-containerregistry's remote.DefaultTransport.
func WithTransport(t http.RoundTripper) Option {
	return func(o *options) error {
		if t == nil {
			return errors.New("transport must not be nil")
		}
		o.transport = t
		return nil
	}
}

// WithSourceKeychain sets where credentials for the registries images are copied from come from,
// e.g. go-containerregistry's authn.DefaultKeychain or a keychain built from pull Secrets.
//
// The default is anonymous access.
func WithSourceKeychain(k authn.Keychain) Option {
	return func(o *options) error {
		if k == nil {
			return errors.New("source keychain must not be nil")
		}
		o.sourceKeychain = k
		return nil
	}
}

// WithDestinationKeychain sets where the push credentials for the destination registries come
// from.
//
// The default is anonymous access.
func WithDestinationKeychain(k authn.Keychain) Option {
	return func(o *options) error {
		if k == nil {
			return errors.New("destination keychain must not be nil")
		}
		o.dstKeychain = k
		return nil
	}
}

// WithJobs sets how many blobs one copy transfers at the same time: every upload streams from
// a source download, and a copy's downloads are limited to n. (Existence checks and mounts, which
// move no data, may run n at a time for each of n manifests of a multi-arch index.)
//
// The default is 4.
func WithJobs(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("jobs must be at least 1, got %d", n)
		}
		o.jobs = n
		return nil
	}
}

// WithMaxConcurrentCopies bounds how many copies run at the same time across the whole Mirror;
// further copies wait for a slot. Lookups (Resolve, Present, cache hits) are not bounded.
//
// The default is 5.
func WithMaxConcurrentCopies(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("max concurrent copies must be at least 1, got %d", n)
		}
		o.maxCopies = n
		return nil
	}
}

// WithCacheSize sets how many destination references the presence cache remembers. The index of
// blobs known to be in the destination registry (used for cross-repository mounts) holds four times
// as many digests.
//
// The default is 4096.
func WithCacheSize(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("cache size must be at least 1, got %d", n)
		}
		o.cacheSize = n
		return nil
	}
}

// WithCacheTTL sets how long an entry of the presence cache is trusted before the destination is
// asked again (one manifest HEAD). Copies can be pruned behind the Mirror's back; the TTL bounds
// how long such a loss goes unnoticed.
//
// The default is 10 minutes.
func WithCacheTTL(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("cache TTL must be positive, got %s", d)
		}
		o.cacheTTL = d
		return nil
	}
}

// WithRequestTimeout bounds each registry request. For requests that move a body (blob uploads
// and downloads) it is a stall timeout instead: the request fails when no byte has moved for
// that long, so a large blob on a slow but live connection is not cut off.
//
// The default is 2 minutes.
func WithRequestTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("request timeout must be positive, got %s", d)
		}
		o.requestTimeout = d
		return nil
	}
}

// WithRetry sets how failed requests are retried: at most maxAttempts attempts in all, waiting
// baseDelay, then twice as long each time (with jitter), never more than maxDelay. A 429 whose
// Retry-After is longer than maxDelay is not waited for: the call fails with a RateLimitedError.
//
// The defaults are 5 attempts, 500ms and 30s.
func WithRetry(maxAttempts int, baseDelay, maxDelay time.Duration) Option {
	return func(o *options) error {
		if maxAttempts < 1 {
			return fmt.Errorf("retry attempts must be at least 1, got %d", maxAttempts)
		}
		if baseDelay < 0 || maxDelay < baseDelay {
			return fmt.Errorf("retry delays must satisfy 0 <= base (%s) <= max (%s)", baseDelay, maxDelay)
		}
		o.maxAttempts, o.baseDelay, o.maxDelay = maxAttempts, baseDelay, maxDelay
		return nil
	}
}

// WithObserver sets hooks that are told about copies, requests, cache lookups, bytes moved and
// rate limits, e.g. to export metrics.
//
// The default observes nothing.
func WithObserver(obs Observer) Option {
	return func(o *options) error {
		o.observer = obs
		return nil
	}
}

// WithLogger sets the logger. Copies are logged at level 0, skipped copies and retries at level
// 1, every request at level 2.
//
// The default discards logs.
func WithLogger(l logr.Logger) Option {
	return func(o *options) error {
		o.logger = l
		return nil
	}
}

// WithClock sets the clock the Mirror reads and waits on in three places: the age of presence
// cache entries (WithCacheTTL), the current time against which a Retry-After date is read, and
// the waits between attempts of a request (WithRetry, Retry-After). A fake clock lets a test
// expire the cache or run retries without sleeping.
//
// Everything else keeps real time: request and stall timeouts (WithRequestTimeout), the wait for
// another copy's upload of a shared blob, the whole-upload retries go-containerregistry makes
// itself, and the durations passed to the Observer.
//
// The default is the system clock.
func WithClock(c Clock) Option {
	return func(o *options) error {
		if c == nil {
			return errors.New("clock must not be nil")
		}
		o.clock = c
		return nil
	}
}

// WithUserAgent sets the product token sent in the User-Agent header, followed by
// go-containerregistry's own, e.g. "my-mirror/1.2".
//
// The default is none: go-containerregistry's own token alone.
func WithUserAgent(ua string) Option {
	return func(o *options) error {
		o.userAgent = ua
		return nil
	}
}

// defaultTransport clones remote.DefaultTransport so that the Mirror's connection pool is its own.
func defaultTransport() http.RoundTripper {
	if t, ok := remote.DefaultTransport.(*http.Transport); ok {
		return t.Clone()
	}
	return remote.DefaultTransport
}

type anonymousKeychain struct{}

func (anonymousKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.Anonymous, nil
}
