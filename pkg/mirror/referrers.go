package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// Referrers counts what a Copy did with the image's signatures, attestations, SBOMs and other
// referrers (see WithReferrers).
type Referrers struct {
	// Found is how many the source has: manifests under cosign's tags and OCI referrers, of the
	// image, of the images of an index, and of those referrers in turn.
	Found int
	// Copied counts those the destination did not have, which this call copied.
	Copied int
	// BytesUploaded is what copying them uploaded: their manifests and the blobs the
	// destination repository did not have.
	BytesUploaded int64
}

// ReferrersError says that the image is in the destination, but one of its signatures,
// attestations, SBOMs or other referrers is not, or is not listed there where a verifier looks
// for it. Copy returns it rather than success: a policy that verifies signatures (Kyverno's
// verifyImages, sigstore's policy-controller) rejects an image whose copy lacks them. It wraps
// the cause, so Classify and SideOf see through it.
type ReferrersError struct {
	// Subject is the digest the referrer refers to.
	Subject v1.Hash
	// Referrer is what is missing: a cosign tag (sha256-<hex>.sig) or a referrer's digest.
	Referrer string

	err error
}

func (e *ReferrersError) Error() string {
	return fmt.Sprintf("copying %s, a referrer of %s: %v", e.Referrer, e.Subject, e.err)
}

// Unwrap returns the cause.
func (e *ReferrersError) Unwrap() error { return e.err }

// ErrReferrersNotListed matches (errors.Is) the error of a Copy that copied a referrer the
// destination registry does not list: it has no referrers API and the referrers tag schema's
// tag is taken (see WithReferrers), or it stored the referrer and lists nothing.
var ErrReferrersNotListed = errors.New("referrers not listed in the destination")

// notListedError is an ErrReferrersNotListed; Classify calls it KindInvalid.
type notListedError struct{ what string }

func (e *notListedError) Error() string        { return e.what }
func (e *notListedError) Is(target error) bool { return target == ErrReferrersNotListed }

// cosignSuffixes are the tags cosign keeps next to an image for its digest D, "sha256-<hex>.<suffix>":
// signatures, attestations and SBOMs (https://github.com/sigstore/cosign/blob/main/specs/SIGNATURE_SPEC.md).
var cosignSuffixes = []string{"sig", "att", "sbom"}

// maxReferrers bounds the referrer manifests one Copy looks at, against a registry that lists
// without end. An image with more fails with a ReferrersError rather than be copied without
// some of them.
const maxReferrers = 256

// attestationManifest is how buildkit marks, in an index, the manifests that hold an image's
// provenance and SBOM. They are copied with the index; nobody signs them on their own, so
// their referrers are not looked for.
const attestationManifest = "attestation-manifest"

// cosignTag is where cosign keeps what kind suffix of thing it made for digest h.
func cosignTag(h v1.Hash, suffix string) string { return h.Algorithm + "-" + h.Hex + "." + suffix }

// fallbackTag is the referrers tag schema's tag for digest h: <alg>-<ref>, the algorithm cut to
// 32 characters and the encoded digest to 64
// (https://github.com/opencontainers/distribution-spec/blob/main/spec.md#referrers-tag-schema).
// DigestTag has a prefix so as not to be this tag; earlier versions' digest tags were, see
// destinationReferrers.
func fallbackTag(h v1.Hash) string {
	return h.Algorithm[:min(len(h.Algorithm), 32)] + "-" + h.Hex[:min(len(h.Hex), 64)]
}

// referrerSync copies the referrers of one image from its source repository into its
// destination repository.
type referrerSync struct {
	m        *Mirror
	src, dst name.Repository
	digest   v1.Hash // the image's

	srcPuller, dstPuller *remote.Puller
	pusher               *remote.Pusher
	stats                *copyStats

	mu             sync.Mutex
	srcAPI, dstAPI *apiClient
	seen           map[string]bool // referrer digests and cosign tags
	res            Referrers
}

// syncReferrers makes the destination repository of job.dst hold what refers to job.digest in
// the source repository, found in the two places verifiers look: cosign's tags (sha256-<hex>.sig,
// .att, .sbom) and OCI 1.1 referrers (manifests whose subject is the digest), listed by the
// referrers API where the registry has one and by the referrers tag schema where it has not.
// For an index it does the same for each of its images, and for every referrer found it looks
// for referrers of that referrer too (a signed SBOM). Manifests are copied byte for byte, so
// signatures made for the source verify against the destination. manifest is the image's
// manifest if the caller has it (nil reads it back from the destination when it is an index).
// A missing referrer is not an error; one that exists and could not be copied or listed is.
//
// It uses the copy's clients (job.source, job.destination, job.pusher), whose pings and tokens
// the image's copy or check has already paid for (or, for the source, pays for them: every
// sync looks there).
func (m *Mirror) syncReferrers(ctx context.Context, job copyJob, mediaType types.MediaType, manifest []byte) (Referrers, error) {
	source, err := job.source.get(ctx)
	if err != nil {
		return Referrers{}, fmt.Errorf("looking for referrers: %w", explain(err, job.pinned, nil, SideSource))
	}
	s := &referrerSync{m: m, src: job.pinned.Context(), dst: job.dst.Context(), digest: job.digest, seen: map[string]bool{},
		srcPuller: source.puller, dstPuller: job.destination.puller, pusher: job.pusher,
		srcAPI: source.api, dstAPI: job.destination.api}
	s.stats = newCopyStats(s.dst, m.o.observer)
	ctx = withStats(ctx, s.stats)
	subjects, err := s.subjects(ctx, mediaType, manifest)
	if err != nil {
		return Referrers{}, err
	}

	// Every lookup is one request or two, independent of the others: run them WithJobs at a
	// time. The referrers of one subject are copied in turn, since a registry without the
	// referrers API lists them in one index that each would otherwise rewrite.
	var g errgroup.Group
	g.SetLimit(m.o.jobs)
	var mu sync.Mutex
	var errs []error
	do := func(f func() error) {
		g.Go(func() error {
			if err := f(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
	}
	for _, h := range subjects {
		for _, suffix := range cosignSuffixes {
			do(func() error { return s.tagged(ctx, h, suffix) })
		}
		do(func() error { return s.referred(ctx, h) })
	}
	_ = g.Wait()
	var blobs Result
	s.stats.result(&blobs)
	s.mu.Lock()
	defer s.mu.Unlock()
	res := s.res
	res.BytesUploaded += blobs.BytesUploaded
	return res, errors.Join(errs...)
}

// subjects are the digests whose referrers are looked for: the image's, and for an index those
// of its images (cosign sign --recursive signs each), attestation manifests left out.
func (s *referrerSync) subjects(ctx context.Context, mediaType types.MediaType, manifest []byte) ([]v1.Hash, error) {
	out := []v1.Hash{s.digest}
	if !mediaType.IsIndex() {
		return out, nil
	}
	if manifest == nil {
		// Read it from the destination, which has it: no pull spent on the source.
		ref := s.dst.Digest(s.digest.String())
		desc, err := s.dstPuller.Get(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("reading index %s back from the destination registry: %w", s.digest, explain(err, nil, ref, SideDestination))
		}
		manifest = desc.Manifest
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(manifest))
	if err != nil {
		return nil, fmt.Errorf("reading index %s: %w", s.digest, err)
	}
	for _, d := range im.Manifests {
		if d.Annotations["vnd.docker.reference.type"] == attestationManifest || !(d.MediaType.IsImage() || d.MediaType.IsIndex()) {
			continue
		}
		out = append(out, d.Digest)
	}
	return out, nil
}

// visit reports whether key (a referrer's digest or a cosign tag) is new to this sync, and
// counts it as found.
func (s *referrerSync) visit(key string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[key] {
		return false, nil
	}
	if len(s.seen) >= maxReferrers {
		return false, fmt.Errorf("the source has more than %d referrers for %s and its referrers: none is copied beyond that", maxReferrers, s.digest)
	}
	s.seen[key] = true
	s.res.Found++
	return true, nil
}

func (s *referrerSync) copied(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.res.Copied++
	s.res.BytesUploaded += n
}

// client returns the API client of the source or destination side, made on first use.
func (s *referrerSync) client(ctx context.Context, side Side) (*apiClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, repo, kc, scope := &s.srcAPI, s.src, s.m.o.sourceKeychain, transport.PullScope
	if side == SideDestination {
		c, repo, kc, scope = &s.dstAPI, s.dst, s.m.o.dstKeychain, transport.PushScope
	}
	if *c == nil {
		made, err := s.m.newAPIClient(ctx, repo, kc, scope)
		if err != nil {
			return nil, err
		}
		*c = made
	}
	return *c, nil
}

// tagged copies the manifest under cosign's tag for subject with suffix, if the source has one
// the destination has not.
func (s *referrerSync) tagged(ctx context.Context, subject v1.Hash, suffix string) error {
	tag := cosignTag(subject, suffix)
	srcRef, dstRef := s.src.Tag(tag), s.dst.Tag(tag)
	fail := func(err error) error { return &ReferrersError{Subject: subject, Referrer: tag, err: err} }
	want, err := s.head(ctx, SideSource, srcRef)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fail(fmt.Errorf("looking for it: %w", explain(err, srcRef, nil, SideSource)))
	}
	if _, err := s.visit(tag); err != nil {
		return fail(err)
	}
	got, err := s.head(ctx, SideDestination, dstRef)
	if err != nil && !isNotFound(err) {
		return fail(fmt.Errorf("checking the destination: %w", explain(err, nil, dstRef, SideDestination)))
	}
	if got != nil && got.Digest == want.Digest {
		return nil
	}
	n, stored, err := s.copyManifest(ctx, want.Digest, dstRef)
	if err != nil {
		return fail(err)
	}
	if stored == (v1.Hash{}) {
		// The registry did not say what it stored: ask.
		got, err = s.head(ctx, SideDestination, dstRef)
		if err != nil {
			return fail(fmt.Errorf("verifying the copy: %w", explain(err, nil, dstRef, SideDestination)))
		}
		stored = got.Digest
	}
	if stored != want.Digest {
		return fail(&DigestMismatchError{Reference: dstRef.String(), Want: want.Digest, Got: stored})
	}
	s.copied(n)
	return nil
}

// referred copies the OCI referrers of subject that the destination does not list, lists them
// there, then does the same for the referrers of each.
func (s *referrerSync) referred(ctx context.Context, subject v1.Hash) error {
	srcRef := s.src.Digest(subject.String())
	refs, err := s.sourceReferrers(ctx, subject)
	if err != nil {
		return &ReferrersError{Subject: subject, Referrer: "its referrers", err: fmt.Errorf("listing them: %w", explain(err, srcRef, nil, SideSource))}
	}
	var fresh []v1.Descriptor
	for _, d := range refs {
		ok, err := s.visit(d.Digest.String())
		if err != nil {
			return &ReferrersError{Subject: subject, Referrer: d.Digest.String(), err: err}
		}
		if ok {
			fresh = append(fresh, d)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	listed, err := s.destinationReferrers(ctx, subject)
	if err != nil {
		return &ReferrersError{Subject: subject, Referrer: fresh[0].Digest.String(), err: err}
	}
	var pushed []v1.Descriptor
	var errs []error
	for _, d := range fresh {
		if listed.has(d.Digest) {
			continue
		}
		if listed.takenBy != "" {
			errs = append(errs, &ReferrersError{Subject: subject, Referrer: d.Digest.String(), err: listed.takenError(s.dst, subject)})
			continue
		}
		n, _, err := s.copyManifest(ctx, d.Digest, s.dst.Digest(d.Digest.String()))
		if err != nil {
			errs = append(errs, &ReferrersError{Subject: subject, Referrer: d.Digest.String(), err: err})
			continue
		}
		s.copied(n)
		pushed = append(pushed, d)
	}
	if len(pushed) > 0 {
		if err := s.list(ctx, subject, listed, pushed); err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range fresh {
		if err := s.referred(ctx, d.Digest); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// list makes the destination list pushed as referrers of subject. A registry with the
// referrers API does that itself when the manifests arrive; without it, the Mirror writes the
// referrers tag schema's index once, with what was listed before and the new ones. Either way
// it then asks the destination, so that a registry that stores a manifest with a subject but
// lists nothing is found out.
func (s *referrerSync) list(ctx context.Context, subject v1.Hash, before *listing, pushed []v1.Descriptor) error {
	if !before.api {
		idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: append(slices.Clone(before.index), pushed...)}
		slices.SortFunc(idx.Manifests, func(a, b v1.Descriptor) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
		raw, err := json.Marshal(idx)
		if err != nil {
			return err
		}
		ref := s.dst.Tag(fallbackTag(subject))
		c, err := s.client(ctx, SideDestination)
		if err == nil {
			_, err = c.put(ctx, ref, types.OCIImageIndex, raw)
		}
		if err != nil {
			return &ReferrersError{Subject: subject, Referrer: ref.TagStr(), err: fmt.Errorf("writing the referrers tag schema's index: %w", explain(err, nil, ref, SideDestination))}
		}
		s.mu.Lock()
		s.res.BytesUploaded += int64(len(raw))
		s.mu.Unlock()
	}
	after, err := s.destinationReferrers(ctx, subject)
	if err != nil {
		return &ReferrersError{Subject: subject, Referrer: pushed[0].Digest.String(), err: err}
	}
	for _, d := range pushed {
		if !after.has(d.Digest) {
			return &ReferrersError{Subject: subject, Referrer: d.Digest.String(), err: &explainedError{side: SideDestination,
				err:    &notListedError{what: fmt.Sprintf("destination registry %s stored it but does not list it as a referrer", s.dst.RegistryStr())},
				advice: "its referrers API does not work as the OCI distribution spec says: check the registry's version and configuration"}}
		}
	}
	return nil
}

// sourceReferrers lists what refers to subject in the source: by the referrers API, or else by
// the referrers tag schema. Where the schema's tag holds the subject itself (another mirror's
// digest tag) or something else than an index, there are no referrers to read.
//
// go-containerregistry's remote.Referrers does the same, but GETs the tag schema's tag without a
// HEAD first, and takes whatever index it finds there for a list of referrers; here a HEAD
// tells whether there is anything to GET.
func (s *referrerSync) sourceReferrers(ctx context.Context, subject v1.Hash) ([]v1.Descriptor, error) {
	c, err := s.client(ctx, SideSource)
	if err != nil {
		return nil, err
	}
	refs, api, err := c.referrers(ctx, subject)
	if err != nil || api {
		return refs, err
	}
	idx, _, err := s.fallbackIndex(ctx, SideSource, subject)
	return idx, err
}

// heldBySubject is what holds the referrers tag schema's tag of an image when that tag points at
// the image itself: the digest tag of an earlier version of this package, or another mirror's.
const heldBySubject = "the image itself (an old digest tag, or another mirror's)"

// fallbackIndex reads the referrers tag schema's index for subject on one side: the referrers
// it lists, and what else holds the tag when it is not such an index ("" when nothing does).
func (s *referrerSync) fallbackIndex(ctx context.Context, side Side, subject v1.Hash) ([]v1.Descriptor, string, error) {
	repo, p := s.src, s.srcPuller
	if side == SideDestination {
		repo, p = s.dst, s.dstPuller
	}
	ref := repo.Tag(fallbackTag(subject))
	desc, err := s.head(ctx, side, ref)
	if isNotFound(err) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	if desc.Digest == subject {
		return nil, heldBySubject, nil
	}
	if desc.MediaType != types.OCIImageIndex {
		return nil, fmt.Sprintf("a %s manifest", desc.MediaType), nil
	}
	got, err := p.Get(ctx, repo.Digest(desc.Digest.String()))
	if err != nil {
		return nil, "", err
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(got.Manifest))
	if err != nil {
		return nil, "", err
	}
	return im.Manifests, "", nil
}

// listing is what the destination lists as referrers of one subject.
type listing struct {
	api   bool            // the registry has the referrers API
	index []v1.Descriptor // what it lists
	// takenBy, without the API, says what holds the referrers tag schema's tag instead of an
	// index of referrers; "" when it is free or holds one.
	takenBy string
}

func (l *listing) has(h v1.Hash) bool {
	return slices.ContainsFunc(l.index, func(d v1.Descriptor) bool { return d.Digest == h })
}

// takenError explains why referrers of subject cannot be listed in repo.
//
// A registry without the referrers API lists the referrers of sha256:<hex> in an index tagged
// sha256-<hex>. When something else holds that tag (another tool's manifest, or the image
// itself without a digest tag of this package's form to keep it), it is left alone: the
// Mirror does not move a tag it did not write. The image's OCI referrers then cannot be
// listed there, so the copy is reported incomplete rather than left for a verifier to reject.
func (l *listing) takenError(repo name.Repository, subject v1.Hash) error {
	return &explainedError{side: SideDestination,
		err: &notListedError{what: fmt.Sprintf("destination registry %s has no referrers API, and tag %s, where it would list the referrers, holds %s",
			repo.RegistryStr(), fallbackTag(subject), l.takenBy)},
		advice: "copy to a registry with the referrers API, or move that tag away; or copy without referrers (WithReferrers)"}
}

// destinationReferrers reads what the destination lists as referrers of subject, and whether
// it has the referrers API.
func (s *referrerSync) destinationReferrers(ctx context.Context, subject v1.Hash) (*listing, error) {
	ref := s.dst.Digest(subject.String())
	c, err := s.client(ctx, SideDestination)
	if err != nil {
		return nil, fmt.Errorf("checking the destination: %w", explain(err, nil, ref, SideDestination))
	}
	refs, api, err := c.referrers(ctx, subject)
	if err != nil {
		return nil, fmt.Errorf("listing them in the destination: %w", explain(err, nil, ref, SideDestination))
	}
	if api {
		return &listing{api: true, index: refs}, nil
	}
	refs, takenBy, err := s.fallbackIndex(ctx, SideDestination, subject)
	if err != nil {
		return nil, fmt.Errorf("reading the referrers tag schema's index in the destination: %w", explain(err, nil, ref, SideDestination))
	}
	if takenBy == heldBySubject {
		free, err := s.digestTagKeeps(ctx, subject)
		if err != nil {
			return nil, fmt.Errorf("checking the destination's digest tag: %w", explain(err, nil, s.dst.Tag(DigestTag(subject)), SideDestination))
		}
		if free {
			takenBy = ""
		}
	}
	return &listing{index: refs, takenBy: takenBy}, nil
}

// digestTagKeeps reports whether the image's digest tag holds subject in the destination, so
// that an old digest tag of the referrers tag schema's form (what earlier versions wrote) may be
// written over with the index of subject's referrers without leaving the image untagged for
// the registry's garbage collector. It asks the registry rather than trusting that Copy put
// the tag in place: one HEAD, only for a repository that has such an old tag.
func (s *referrerSync) digestTagKeeps(ctx context.Context, subject v1.Hash) (bool, error) {
	if !s.m.o.digestTags || subject != s.digest {
		return false, nil
	}
	desc, err := s.head(ctx, SideDestination, s.dst.Tag(DigestTag(subject)))
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return desc.Digest == subject, nil
}

// copyManifest copies manifest h from the source repository to dst, byte for byte, with the
// blobs (and, for an index, the manifests) it references, and returns the bytes it uploaded
// and the digest the registry says it stored (zero when it does not say). Blobs are uploaded
// WithJobs at a time: referrers are small, and their cost is in requests, not bytes.
// The manifest is PUT as is rather than through go-containerregistry's writer: for a manifest
// with a subject that writer rewrites the referrers tag schema's index of a registry without
// the referrers API on its own, one referrer at a time, whatever holds that tag (see
// listing.takenError); the Mirror writes that index itself (referrerSync.list).
func (s *referrerSync) copyManifest(ctx context.Context, h v1.Hash, dst name.Reference) (int64, v1.Hash, error) {
	srcRef := s.src.Digest(h.String())
	desc, err := s.srcPuller.Get(ctx, srcRef)
	if err != nil {
		return 0, v1.Hash{}, fmt.Errorf("fetching the manifest: %w", explain(err, srcRef, nil, SideSource))
	}
	var children []v1.Descriptor
	switch mt := desc.MediaType; {
	case mt.IsImage():
		mf, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
		if err != nil {
			return 0, v1.Hash{}, fmt.Errorf("reading the manifest: %w", explain(err, srcRef, nil, SideSource))
		}
		children = append([]v1.Descriptor{mf.Config}, mf.Layers...)
	case mt.IsIndex():
		im, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
		if err != nil {
			return 0, v1.Hash{}, fmt.Errorf("reading the index: %w", explain(err, srcRef, nil, SideSource))
		}
		children = im.Manifests
	default:
		return 0, v1.Hash{}, &unsupportedError{what: fmt.Sprintf("referrer %s has media type %q, neither an image manifest nor an index", h, mt)}
	}
	var total int64
	var blobs errgroup.Group
	blobs.SetLimit(s.m.o.jobs)
	for _, c := range children {
		if c.MediaType.IsImage() || c.MediaType.IsIndex() {
			n, _, err := s.copyManifest(ctx, c.Digest, s.dst.Digest(c.Digest.String()))
			if err != nil {
				_ = blobs.Wait()
				return total, v1.Hash{}, err
			}
			total += n
			continue
		}
		if !c.MediaType.IsDistributable() {
			continue // foreign layers stay where their URLs say, as in an image copy
		}
		blobs.Go(func() error { return s.upload(ctx, c) })
	}
	if err := blobs.Wait(); err != nil {
		return total, v1.Hash{}, err
	}
	c, err := s.client(ctx, SideDestination)
	var stored v1.Hash
	if err == nil {
		stored, err = c.put(ctx, dst, desc.MediaType, desc.Manifest)
	}
	if err != nil {
		return total, v1.Hash{}, fmt.Errorf("pushing the manifest: %w", explain(err, nil, dst, SideDestination))
	}
	return total + int64(len(desc.Manifest)), stored, nil
}

// upload copies blob d from the source repository, unless the destination repository has it.
func (s *referrerSync) upload(ctx context.Context, d v1.Descriptor) error {
	srcRef := s.src.Digest(d.Digest.String())
	dstRef := s.dst.Digest(d.Digest.String())
	l, err := s.srcPuller.Layer(ctx, srcRef)
	if err != nil {
		return fmt.Errorf("fetching blob %s: %w", d.Digest, explain(err, srcRef, nil, SideSource))
	}
	// No cross-repository mount from the source: it is on another registry, or one the push
	// credentials may not read.
	if ml, ok := l.(*remote.MountableLayer); ok {
		l = ml.Layer
	}
	l = &sizedLayer{Layer: l, size: d.Size}
	s.stats.addBlob(d.Digest, d.Size, false)
	if err := s.pusher.Upload(ctx, s.dst, l); err != nil {
		return fmt.Errorf("uploading blob %s: %w", d.Digest, explain(err, srcRef, dstRef, SideDestination))
	}
	return nil
}

// head HEADs a manifest on one side with that side's API client, which shares its transport
// (one ping, one token) with the copy's Puller for that side (repoClient).
func (s *referrerSync) head(ctx context.Context, side Side, ref name.Reference) (*v1.Descriptor, error) {
	c, err := s.client(ctx, side)
	if err != nil {
		return nil, err
	}
	return c.head(ctx, ref)
}

// apiClient makes the registry requests go-containerregistry has no call for: the referrers
// API, and a manifest PUT that does nothing else; and manifest HEADs. It authenticates once,
// for one repository.
type apiClient struct {
	repo   name.Repository
	client *http.Client
}

func (m *Mirror) newAPIClient(ctx context.Context, repo name.Repository, kc authn.Keychain, scope string) (*apiClient, error) {
	auth, err := authn.Resolve(ctx, kc, repo)
	if err != nil {
		return nil, err
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, transport.NewUserAgent(m.transport, m.o.userAgent), []string{repo.Scope(scope)})
	if err != nil {
		return nil, err
	}
	return &apiClient{repo: repo, client: &http.Client{Transport: rt}}, nil
}

func (c *apiClient) url(path string) *url.URL {
	return &url.URL{Scheme: c.repo.Scheme(), Host: c.repo.RegistryStr(), Path: "/v2/" + c.repo.RepositoryStr() + path}
}

// referrers lists the referrers of subject with the referrers API, following pages. api is
// false when the registry has no such API: it answered anything but an OCI index with 200.
func (c *apiClient) referrers(ctx context.Context, subject v1.Hash) ([]v1.Descriptor, bool, error) {
	var out []v1.Descriptor
	next := c.url("/referrers/" + subject.String())
	for page := 0; next != nil; page++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next.String(), nil)
		if err != nil {
			return nil, false, err
		}
		req.Header.Set("Accept", string(types.OCIImageIndex))
		resp, err := c.client.Do(req)
		if err != nil {
			return nil, false, err
		}
		// Registries without the API answer 404 (distribution), 400, 405 or 406; GHCR redirects
		// to a web page that is not found.
		if err := transport.CheckError(resp, http.StatusOK, http.StatusNotFound, http.StatusBadRequest,
			http.StatusMethodNotAllowed, http.StatusNotAcceptable); err != nil {
			_ = resp.Body.Close()
			return nil, false, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		_ = resp.Body.Close()
		if err != nil {
			return nil, false, err
		}
		var im v1.IndexManifest
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &im) != nil ||
			!(strings.HasPrefix(resp.Header.Get("Content-Type"), string(types.OCIImageIndex)) || im.MediaType == types.OCIImageIndex) {
			if page == 0 {
				return nil, false, nil
			}
			return nil, true, fmt.Errorf("page %d of the referrers of %s is not an OCI index", page+1, subject)
		}
		out = append(out, im.Manifests...)
		if len(out) > maxReferrers {
			return out, true, nil // visit reports it
		}
		next = nextPage(next, resp.Header.Get("Link"))
	}
	return out, true, nil
}

// nextPage reads the rel="next" target of a Link header, relative to u; nil when there is none.
func nextPage(u *url.URL, link string) *url.URL {
	for _, part := range strings.Split(link, ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
		if !ok || !strings.Contains(strings.ReplaceAll(params, " ", ""), `rel="next"`) {
			continue
		}
		target = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(target), "<"), ">")
		if n, err := u.Parse(target); err == nil {
			return n
		}
	}
	return nil
}

// manifestTypes are the manifests a HEAD accepts, as go-containerregistry's.
var manifestTypes = strings.Join([]string{string(types.OCIManifestSchema1), string(types.DockerManifestSchema2),
	string(types.OCIImageIndex), string(types.DockerManifestList), string(types.DockerManifestSchema1Signed),
	string(types.DockerManifestSchema1)}, ",")

// head HEADs manifest ref: its digest, media type and size. A missing manifest is a
// *transport.Error with status 404.
func (c *apiClient) head(ctx context.Context, ref name.Reference) (*v1.Descriptor, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, c.url("/manifests/"+ref.Identifier()).String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", manifestTypes)
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return nil, err
	}
	h, err := v1.NewHash(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		return nil, fmt.Errorf("HEAD %s: the registry sent no valid Docker-Content-Digest: %w", ref, err)
	}
	return &v1.Descriptor{Digest: h, MediaType: types.MediaType(resp.Header.Get("Content-Type")), Size: resp.ContentLength}, nil
}

// put PUTs a manifest as is, and returns the digest the registry says it stored (its
// Docker-Content-Digest header; zero when it sends none).
func (c *apiClient) put(ctx context.Context, ref name.Reference, mt types.MediaType, raw []byte) (v1.Hash, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.url("/manifests/"+ref.Identifier()).String(), bytes.NewReader(raw))
	if err != nil {
		return v1.Hash{}, err
	}
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }
	req.Header.Set("Content-Type", string(mt))
	resp, err := c.client.Do(req)
	if err != nil {
		return v1.Hash{}, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK, http.StatusCreated, http.StatusAccepted); err != nil {
		return v1.Hash{}, err
	}
	stored, _ := v1.NewHash(resp.Header.Get("Docker-Content-Digest"))
	return stored, nil
}

// sizedLayer is a source blob whose size the manifest that references it states. A layer from
// Puller.Layer knows only its digest, and go-containerregistry HEADs the source for its size
// (the upload's Content-Length) before streaming it. The blob is still checked as it streams:
// go-containerregistry verifies its SHA-256, and a blob of another length than the manifest
// states fails the upload as invalid, blaming the source (sizeCheck).
type sizedLayer struct {
	v1.Layer
	size int64
}

func (l *sizedLayer) Size() (int64, error) { return l.size, nil }

func (l *sizedLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	h, err := l.Digest()
	if err != nil {
		_ = rc.Close()
		return nil, err
	}
	return &sizeCheck{ReadCloser: rc, digest: h, want: l.size}, nil
}

// sizeCheck fails a blob's stream as soon as it is longer than want, or when it ends shorter.
type sizeCheck struct {
	io.ReadCloser
	digest v1.Hash
	want   int64
	n      int64
}

func (c *sizeCheck) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	switch {
	case c.n > c.want:
		return n, c.mismatch("more")
	case errors.Is(err, io.EOF) && c.n < c.want:
		return n, c.mismatch("fewer")
	}
	return n, err
}

func (c *sizeCheck) mismatch(what string) error {
	return &unsupportedError{what: fmt.Sprintf("source blob %s has %s bytes than the %d its manifest states", c.digest, what, c.want)}
}
