// Package mirror copies container images, whole and unchanged, from one registry into
// another (the destination), with their signatures, and remembers what it copied so that
// asking again is nearly free. It needs nothing but go-containerregistry, golang-lru, logr and
// x/sync.
//
// A Mirror is built for a long-running process that is asked, over and over and from many
// goroutines, to make sure that some image is in the destination:
//
//   - Copy resolves the source to a digest with a manifest HEAD (never a GET: Docker Hub counts
//     every manifest GET as a pull), then asks its presence cache, then the destination
//     registry (one HEAD), and copies only when the copy is missing. Cache entries expire after
//     a TTL (WithCacheTTL) because copies can be pruned behind the Mirror's back.
//   - Concurrent Copy calls for the same digest and destination repository share one copy
//     (golang.org/x/sync/singleflight); other tags of the same digest are then added with a
//     manifest PUT, without moving blobs again.
//   - Copies move every manifest as published: a multi-arch index keeps all its platforms and
//     every manifest keeps its bytes, so digests are preserved and whatever is pinned by digest
//     keeps working against the copy. Blobs are streamed from source to destination, never held
//     in memory, WithJobs at a time; blobs the destination repository has are skipped, and
//     blobs another repository of the destination registry has (the Mirror keeps a bounded
//     index of those) are mounted across repositories instead of uploaded. A blob that a
//     concurrent copy is uploading to another repository is waited for, then mounted, so that
//     images copied together upload their shared base layers once.
//   - With each image go its signatures, attestations, SBOMs and other referrers (WithReferrers,
//     on by default): see below.
//   - Every image copied into a repository is also tagged there by its digest,
//     digest-sha256-<hex> (WithDigestTags, on by default), and Present puts that tag back where it is missing.
//     Registries garbage-collect manifests no tag points to, so without it a pinned digest
//     would disappear once the tag it was copied under moves.
//   - Requests are retried with exponential backoff and jitter on 5xx, 408, 429, broken and
//     timed-out connections, when they can be replayed; a 429 Retry-After is honoured up to
//     the maximum delay, beyond which the call fails with a RateLimitedError to requeue.
//     Every request has a timeout, a stall timeout for blob transfers.
//   - Errors are typed and sorted by Classify into Kinds (not found, unauthorized, rate
//     limited, unreachable, schema 1, digest mismatch, invalid), and SideOf tells which end
//     (source or destination) each came from, read from the failed request, so it holds when
//     both ends share a registry host. Their messages say what a person can do. They never
//     contain credentials.
//
// The transfers themselves are go-containerregistry's (pkg/v1/remote): a Puller for each side and
// a Pusher, made for each copy and shared by all its requests to that side (the Pullers with the
// referrers' own requests: one ping and one token per side, plus the Pusher's), fed with the
// source's manifests and layers. The image is pushed the way Pusher.Push does it, less the HEAD of the tag
// Push starts with, which the copy has just made.
//
// # Signatures, attestations, SBOMs and referrers
//
// Verifiers (cosign, Kyverno's verifyImages, sigstore's policy-controller, Notation) look for
// what was made for an image in two places next to it: cosign's tags, sha256-<hex>.sig, .att
// and .sbom, and OCI 1.1 referrers, manifests whose subject is the image, which a registry
// lists by its referrers API (GET /v2/<name>/referrers/<digest>) or, without one, in an index
// tagged sha256-<hex> (the referrers tag schema). With WithReferrers, Copy copies both, byte for
// byte, for the image, for each image of an index (cosign sign --recursive signs them) and for
// the referrers of referrers, and lists the OCI referrers in the destination the way the
// destination registry can: a registry with the API lists them when they arrive; without it,
// the Mirror writes the tag schema's index. A signature made for the source then verifies
// against the copy (the tests do it, with sigstore's code, against distribution).
//
// An image counts as copied only with its referrers: a verifier rejects a copy without them,
// so a referrer the source has and Copy could not copy or list makes Copy fail with a
// *ReferrersError, and the presence cache does not answer for that image until a Copy
// completes it. No referrer at all is not an error. A Copy that reaches the registries looks
// again each time (three HEADs and a referrers request per image on the source), since
// signatures are often added after the image; a cache hit does not.
//
// The referrers tag schema's tag for sha256:<hex> is sha256-<hex>, which is why the digest tag
// has a prefix of its own (digest-sha256-<hex>): on a destination without the referrers API,
// the image is kept by its digest tag and its referrers are listed under the schema's tag,
// side by side. A repository where an earlier version kept the digest tag under the schema's
// tag is taken over: once the new digest tag holds the image, the index of its referrers is
// written over the old tag. Anything else found under that tag (a manifest put there by
// another tool) is left alone, and Copy fails for an image with OCI referrers there with
// ErrReferrersNotListed, which says what holds the tag.
//
// # One module
//
// This package lives in the module of the project it came from, whose go.mod also requires
// controller-runtime, Kubernetes, Helm and kind for its own binaries. Measured with a tiny
// program that only calls New, against the module published as it is: go list -deps shows 53
// packages outside the standard library from 13 modules, none of them those; but the
// importer's module graph reads that whole go.mod, `go mod tidy` downloads 70 module zips
// (94 MB), and it fails on a requirement the project satisfies with a replace directive
// (sigs.k8s.io/cluster-api/api v0.0.0), which importers do not inherit. With pkg/mirror as a
// module of its own the same program's tidy succeeds, with 22 zips (57 MB, 40 of them
// klauspost/compress, which go-containerregistry needs) and 53 modules in the graph.
//
// It is not a module of its own yet: its integration tests start real registries with the
// project's test environment, which a nested module could only import by requiring the outer
// module back (and with it that go.mod); they would first have to move out of this directory,
// and the Makefile, lint and CI to test a second module. Until then, an importer adds the same
// replace directive (sigs.k8s.io/cluster-api/api => sigs.k8s.io/cluster-api/api v1.14.2; tidy
// then succeeds, downloading 72 zips, 95 MB), or vendors this directory.
//
// # Schema 1 images
//
// Docker's image manifest v2 schema 1 (application/vnd.docker.distribution.manifest.v1+json
// and its signed form, v1+prettyjws) is copied byte for byte, with the blobs its fsLayers name,
// where the destination registry still accepts it. Registries that refuse it, such as distribution
// v3, make Copy fail with a *Schema1Error (errors.Is ErrSchema1) that says to ask the
// publisher for a newer image. Schema 1 cannot be converted without changing the digest.
//
// # Foreign layers
//
// Foreign or non-distributable layers (application/vnd.docker.image.rootfs.foreign.diff.tar.gzip,
// application/vnd.oci.image.layer.nondistributable.v1.tar+gzip and its uncompressed form),
// found in Windows base images, are not copied: their licence restricts redistribution, and
// their manifest entry carries the URLs clients download them from, which remain valid. The
// manifest is copied unchanged, so the copy references the layer exactly as the source
// does, and Result.BlobsForeign counts such layers. A destination registry configured to refuse
// manifests with foreign URLs makes the copy fail with KindInvalid.
//
// # Testing
//
// Package mirrortest has a FaultProxy to put in front of a registry, a recording transport and
// an in-memory registry with per-repository blobs and cross-repository mounts.
package mirror
