// Package mirror copies container images, whole and unchanged, into a backup registry, and
// remembers what it copied so that asking again is nearly free. It is image-cloner's copy
// engine, and a library of its own: it needs nothing from the rest of image-cloner.
//
// A Mirror is built for a long-running process that is asked, over and over and from many
// goroutines, to make sure that some image is backed up:
//
//   - Copy resolves the source to a digest with a manifest HEAD (never a GET: Docker Hub counts
//     every manifest GET as a pull), then asks its presence cache, then the backup registry
//     (one HEAD), and copies only when the backup is missing. Cache entries expire after a TTL
//     (WithCacheTTL) because backups can be pruned behind the Mirror's back.
//   - Concurrent Copy calls for the same digest and backup repository share one copy
//     (golang.org/x/sync/singleflight); other tags of the same digest are then added with a
//     manifest PUT, without moving blobs again.
//   - Copies move every manifest as published: a multi-arch index keeps all its platforms and
//     every manifest keeps its bytes, so digests are preserved and workloads pinned by digest
//     keep working against the backup. Blobs are streamed from source to backup, never held
//     in memory, WithJobs at a time; blobs the backup repository has are skipped, and blobs
//     another repository of the backup registry has (the Mirror keeps a bounded index of
//     those) are mounted across repositories instead of uploaded. A blob that a concurrent
//     copy is uploading to another repository is waited for, then mounted, so that images
//     copied together upload their shared base layers once.
//   - Every image copied into a repository is also tagged there by its digest, sha256-<hex>
//     (WithDigestTags, on by default), and Present puts that tag back where it is missing.
//     Registries garbage-collect manifests no tag points to, so without it the digest a
//     workload is pinned to would disappear once the tag it was copied under moves.
//   - Requests are retried with exponential backoff and jitter on 5xx, 408, 429, broken and
//     timed-out connections, when they can be replayed; a 429 Retry-After is honoured up to
//     the maximum delay, beyond which the call fails with a RateLimitedError to requeue.
//     Every request has a timeout, a stall timeout for blob transfers.
//   - Errors are typed and sorted by Classify into Kinds (not found, unauthorized, rate
//     limited, unreachable, schema 1, digest mismatch, invalid), and SideOf tells which end
//     (source or target) each came from, read from the failed request, so it holds when both
//     ends share a registry host. Their messages say what a person can do. They never contain
//     credentials.
//
// The transfers themselves are go-containerregistry's (pkg/v1/remote): a Puller and a Pusher
// made for each copy, fed with the source's manifests and layers.
//
// # Schema 1 images
//
// Docker's image manifest v2 schema 1 (application/vnd.docker.distribution.manifest.v1+json
// and its signed form, v1+prettyjws) is copied byte for byte, with the blobs its fsLayers name,
// where the backup registry still accepts it. Registries that refuse it, such as distribution
// v3, make Copy fail with a *Schema1Error (errors.Is ErrSchema1) that says to ask the
// publisher for a newer image. Schema 1 cannot be converted without changing the digest.
//
// # Foreign layers
//
// Foreign or non-distributable layers (application/vnd.docker.image.rootfs.foreign.diff.tar.gzip,
// application/vnd.oci.image.layer.nondistributable.v1.tar+gzip and its uncompressed form),
// found in Windows base images, are not copied: their licence restricts redistribution, and
// their manifest entry carries the URLs clients download them from, which remain valid. The
// manifest is copied unchanged, so the backup references the layer exactly as the source
// does, and Result.BlobsForeign counts such layers. A backup registry configured to refuse
// manifests with foreign URLs makes the copy fail with KindInvalid.
//
// # Testing
//
// Package mirrortest has a FaultProxy to put in front of a registry, a recording transport and
// an in-memory registry with per-repository blobs and cross-repository mounts.
package mirror
