package mirror_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	. "github.com/onsi/gomega"

	"github.com/image-cloner/image-cloner/pkg/mirror"
	"github.com/image-cloner/image-cloner/pkg/mirror/mirrortest"
)

// These tests copy images with what refers to them, between in-process registries with and
// without the referrers API. The real signatures, verified against a real registry, are in
// signatures_test.go.

// newReferrersEnv is newEnv with registries that have the referrers API or not.
func newReferrersEnv(t *testing.T, srcAPI, dstAPI bool) *env {
	e := newEnv(t)
	e.src = newServer(t, registry.WithReferrersSupport(srcAPI))
	e.dst = newServer(t, registry.WithReferrersSupport(dstAPI))
	return e
}

// artifact is a small OCI manifest of artifactType whose subject is subject (none if nil), as
// cosign's bundles, Notation signatures or ORAS-attached SBOMs are.
func artifact(t *testing.T, artifactType types.MediaType, subject *v1.Descriptor) v1.Image {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), artifactType)
	if subject != nil {
		img = mutate.Subject(img, *subject).(v1.Image)
	}
	return img
}

func descriptorOf(t *testing.T, x interface {
	MediaType() (types.MediaType, error)
	Digest() (v1.Hash, error)
	Size() (int64, error)
}) *v1.Descriptor {
	t.Helper()
	mt, err := x.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	d, err := x.Digest()
	if err != nil {
		t.Fatal(err)
	}
	n, err := x.Size()
	if err != nil {
		t.Fatal(err)
	}
	return &v1.Descriptor{MediaType: mt, Digest: d, Size: n}
}

func cosignTag(h v1.Hash, suffix string) string { return h.Algorithm + "-" + h.Hex + "." + suffix }

// referrersOf lists what the registry lists as referrers of d, the way verifiers read them:
// go-containerregistry's remote.Referrers, by the API or the referrers tag schema.
func referrersOf(t *testing.T, d name.Digest) []v1.Hash {
	t.Helper()
	idx, err := remote.Referrers(d)
	if err != nil {
		t.Fatalf("listing the referrers of %s: %v", d, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []v1.Hash
	for _, m := range im.Manifests {
		out = append(out, m.Digest)
	}
	return out
}

func TestCopy_copiesCosignTagsWithTheImage(t *testing.T) {
	for _, tc := range []struct {
		name      string
		referrers bool
	}{
		{"with referrers", true},
		{"without referrers (control)", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			e := newEnv(t)
			src, digest := e.push("library/app:1.0", randomImage(t, 2))
			var want = map[string]v1.Hash{}
			for _, suffix := range []string{"sig", "att", "sbom"} {
				tag := cosignTag(digest, suffix)
				_, d := e.push("library/app:"+tag, artifact(t, "application/vnd.dev.cosign.simplesigning.v1+json", nil))
				want[tag] = d
			}
			dst := e.dst.ref(t, "backup/app:1.0")

			res, err := e.mirror(mirror.WithReferrers(tc.referrers)).Copy(ctxT(t), src, dst)

			g.Expect(err).NotTo(HaveOccurred())
			for tag, d := range want {
				got, err := remote.Head(dst.Context().Tag(tag))
				if !tc.referrers {
					g.Expect(err).To(HaveOccurred(), "without referrers %s is not copied", tag)
					continue
				}
				g.Expect(err).NotTo(HaveOccurred(), tag)
				g.Expect(got.Digest).To(Equal(d), "%s keeps its digest", tag)
				expectBackupEqualsSource(g, src.Context().Tag(tag), dst.Context().Tag(tag))
			}
			if !tc.referrers {
				g.Expect(res.Referrers).To(Equal(mirror.Referrers{}))
				return
			}
			g.Expect(res.Referrers.Found).To(Equal(3))
			g.Expect(res.Referrers.Copied).To(Equal(3))
			g.Expect(res.Referrers.BytesUploaded).To(BeNumerically(">", 0))

			// A new Mirror finds them there and copies nothing again.
			e.dst.proxy.ResetCounts()
			again, err := e.mirror().Copy(ctxT(t), src, dst)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(again.AlreadyPresent).To(BeTrue())
			g.Expect(again.Referrers).To(Equal(mirror.Referrers{Found: 3}))
			g.Expect(e.dst.proxy.Count(http.MethodPut, mirrortest.KindAny)).To(Equal(0))
		})
	}
}

func TestCopy_copiesOCIReferrersAndListsThem(t *testing.T) {
	for _, tc := range []struct {
		name           string
		srcAPI, dstAPI bool
		opts           []mirror.Option
	}{
		{"referrers API at both ends", true, true, nil},
		{"tag schema in the source, API in the destination", false, true, nil},
		{"API in the source, tag schema in the destination", true, false, nil},
		{"tag schema at both ends", false, false, nil},
		{"tag schema at both ends, without digest tags", false, false, []mirror.Option{mirror.WithDigestTags(false)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			e := newReferrersEnv(t, tc.srcAPI, tc.dstAPI)
			img := randomImage(t, 2)
			src, digest := e.push("library/app:1.0", img)
			// A signature of the image, and a signature of that signature's subject's SBOM:
			// an SBOM referring to the image, and a signature referring to the SBOM.
			bundle := artifact(t, "application/vnd.dev.sigstore.bundle.v0.3+json", descriptorOf(t, img))
			sbom := artifact(t, "application/spdx+json", descriptorOf(t, img))
			sbomSig := artifact(t, "application/vnd.cncf.notary.signature", descriptorOf(t, sbom))
			var digests []v1.Hash
			for _, a := range []v1.Image{bundle, sbom, sbomSig} {
				d, err := a.Digest()
				g.Expect(err).NotTo(HaveOccurred())
				// remote.Write keeps the source's tag schema index when it has no API.
				g.Expect(remote.Write(src.Context().Digest(d.String()), a)).To(Succeed())
				digests = append(digests, d)
			}
			g.Expect(referrersOf(t, src.Context().Digest(digest.String()))).To(ConsistOf(digests[0], digests[1]))
			dst := e.dst.ref(t, "backup/app:1.0")

			res, err := e.mirror(tc.opts...).Copy(ctxT(t), src, dst)

			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(referrersOf(t, dst.Context().Digest(digest.String()))).To(ConsistOf(digests[0], digests[1]))
			g.Expect(referrersOf(t, dst.Context().Digest(digests[1].String()))).To(ConsistOf(digests[2]))
			for _, d := range digests {
				expectBackupEqualsSource(g, src.Context().Digest(d.String()), dst.Context().Digest(d.String()))
			}
			g.Expect(res.Referrers.Found).To(Equal(3))
			g.Expect(res.Referrers.Copied).To(Equal(3))

			e.dst.proxy.ResetCounts()
			again, err := e.mirror(tc.opts...).Copy(ctxT(t), src, dst)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(again.Referrers).To(Equal(mirror.Referrers{Found: 3}))
			g.Expect(e.dst.proxy.Count(http.MethodPut, mirrortest.KindAny)).To(Equal(0), "nothing is written twice")
		})
	}
}

// pushBundled pushes library/app:1.0 to the source with one OCI referrer, a sigstore bundle,
// and returns the image, its reference and digest, and the bundle's digest.
func (e *env) pushBundled(t *testing.T) (v1.Image, name.Reference, v1.Hash, v1.Hash) {
	t.Helper()
	img := randomImage(t, 2)
	src, digest := e.push("library/app:1.0", img)
	bundle := artifact(t, "application/vnd.dev.sigstore.bundle.v0.3+json", descriptorOf(t, img))
	bundleDigest, err := bundle.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(src.Context().Digest(bundleDigest.String()), bundle); err != nil {
		t.Fatal(err)
	}
	return img, src, digest, bundleDigest
}

// Without the referrers API, a registry lists the referrers of sha256:<hex> in an index tagged
// sha256-<hex>. When another tool's manifest holds that tag, the Mirror leaves it alone: Copy
// reports the OCI referrers it could not list, says what holds the tag, and still copies
// cosign's tags, which do not need it. An old digest tag there (the image itself, as earlier
// versions tagged it) is not written over while digest tags are off, since nothing else would
// keep the image then.
func TestCopy_reportsReferrersTheDestinationCannotList(t *testing.T) {
	for _, tc := range []struct {
		name    string
		holder  func(t *testing.T, img v1.Image) v1.Image
		opts    []mirror.Option
		holding string
	}{
		{"another tool's manifest holds the tag", func(t *testing.T, _ v1.Image) v1.Image { return randomImage(t, 1) }, nil,
			"holds a " + string(types.DockerManifestSchema2) + " manifest"},
		{"the image itself holds it, without digest tags", func(_ *testing.T, img v1.Image) v1.Image { return img },
			[]mirror.Option{mirror.WithDigestTags(false)}, "holds the image itself"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			e := newReferrersEnv(t, true, false)
			img, src, digest, bundleDigest := e.pushBundled(t)
			sigTag := cosignTag(digest, "sig")
			_, sigDigest := e.push("library/app:"+sigTag, artifact(t, "application/vnd.dev.cosign.simplesigning.v1+json", nil))
			dst := e.dst.ref(t, "backup/app:1.0")
			schemaTag := dst.Context().Tag(digest.Algorithm + "-" + digest.Hex)
			holder := tc.holder(t, img)
			g.Expect(remote.Write(schemaTag, holder)).To(Succeed())
			holderDigest, err := holder.Digest()
			g.Expect(err).NotTo(HaveOccurred())
			m := e.mirror(tc.opts...)

			_, err = m.Copy(ctxT(t), src, dst)

			g.Expect(err).To(HaveOccurred())
			t.Logf("error: %v", err)
			var re *mirror.ReferrersError
			g.Expect(errors.As(err, &re)).To(BeTrue(), "%v", err)
			g.Expect(re.Subject).To(Equal(digest))
			g.Expect(re.Referrer).To(Equal(bundleDigest.String()))
			g.Expect(err.Error()).To(ContainSubstring("has no referrers API, and tag " + schemaTag.TagStr() + ", where it would list the referrers, " + tc.holding))
			g.Expect(errors.Is(err, mirror.ErrReferrersNotListed)).To(BeTrue())
			g.Expect(mirror.Classify(err)).To(Equal(mirror.KindInvalid))
			g.Expect(mirror.SideOf(err)).To(Equal(mirror.SideDestination))
			g.Expect(head(t, dst).Digest).To(Equal(digest), "the image itself is there")
			g.Expect(head(t, schemaTag).Digest).To(Equal(holderDigest), "the tag is left as it was")
			g.Expect(head(t, dst.Context().Tag(sigTag)).Digest).To(Equal(sigDigest), "cosign's tag is copied all the same")

			// The copy is not complete, so the presence cache does not answer for it.
			res, err := m.Copy(ctxT(t), src, dst)
			g.Expect(err).To(HaveOccurred())
			g.Expect(res.CacheHit).To(BeFalse())
		})
	}
}

// Earlier versions tagged every copy sha256-<hex>, the referrers tag schema's tag. A repository
// they wrote is taken over: Copy puts the digest tag of today's form in place, then lists the
// image's referrers over the old tag, so the image stays tagged and its referrers are found.
func TestCopy_takesOverAnOldDigestTag(t *testing.T) {
	g := NewWithT(t)
	e := newReferrersEnv(t, true, false)
	img, src, digest, bundleDigest := e.pushBundled(t)
	dst := e.dst.ref(t, "backup/app:1.0")
	oldTag := dst.Context().Tag(digest.Algorithm + "-" + digest.Hex)
	g.Expect(remote.Write(dst, img)).To(Succeed())
	g.Expect(remote.Write(oldTag, img)).To(Succeed())

	res, err := e.mirror().Copy(ctxT(t), src, dst)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Referrers.Copied).To(Equal(1))
	g.Expect(head(t, dst.Context().Tag(mirror.DigestTag(digest))).Digest).To(Equal(digest), "the new digest tag keeps the image")
	g.Expect(head(t, oldTag).MediaType).To(Equal(types.OCIImageIndex), "the old tag now lists the referrers")
	g.Expect(referrersOf(t, dst.Context().Digest(digest.String()))).To(ConsistOf(bundleDigest))
}

func TestCopy_copiesReferrersOfEachImageOfAnIndex(t *testing.T) {
	g := NewWithT(t)
	e := newReferrersEnv(t, true, true)
	idx, err := random.Index(512, 1, 2)
	g.Expect(err).NotTo(HaveOccurred())
	src, digest := e.push("library/app:1.0", idx)
	im, err := idx.IndexManifest()
	g.Expect(err).NotTo(HaveOccurred())
	first, second := im.Manifests[0], im.Manifests[1]
	sigTag := cosignTag(first.Digest, "sig") // cosign sign --recursive signs every image
	_, sigDigest := e.push("library/app:"+sigTag, artifact(t, "application/vnd.dev.cosign.simplesigning.v1+json", nil))
	bundle := artifact(t, "application/vnd.dev.sigstore.bundle.v0.3+json", &second)
	bundleDigest, err := bundle.Digest()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(remote.Write(src.Context().Digest(bundleDigest.String()), bundle)).To(Succeed())
	dst := e.dst.ref(t, "backup/app:1.0")

	res, err := e.mirror().Copy(ctxT(t), src, dst)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Digest).To(Equal(digest))
	g.Expect(head(t, dst.Context().Tag(sigTag)).Digest).To(Equal(sigDigest))
	g.Expect(referrersOf(t, dst.Context().Digest(second.Digest.String()))).To(ConsistOf(bundleDigest))
	g.Expect(res.Referrers).To(Equal(mirror.Referrers{Found: 2, Copied: 2, BytesUploaded: res.Referrers.BytesUploaded}))
}

// A failure to copy a referrer the source has is an error, attributed to its side, and the
// next Copy tries again instead of trusting the presence cache.
func TestCopy_failedReferrerIsReportedAndCopiedNextTime(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	src, digest := e.push("library/app:1.0", randomImage(t, 2)) // Docker schema 2
	sigTag := cosignTag(digest, "sig")
	_, sigDigest := e.push("library/app:"+sigTag, artifact(t, "application/vnd.dev.cosign.simplesigning.v1+json", nil)) // OCI
	e.dst.proxy.Add(mirrortest.Fault{Method: http.MethodPut, Kind: mirrortest.KindManifest,
		ContentType: string(types.OCIManifestSchema1), Status: http.StatusServiceUnavailable})
	dst := e.dst.ref(t, "backup/app:1.0")
	m := e.mirror()

	_, err := m.Copy(ctxT(t), src, dst)

	g.Expect(err).To(HaveOccurred())
	t.Logf("error: %v", err)
	var re *mirror.ReferrersError
	g.Expect(errors.As(err, &re)).To(BeTrue(), "%v", err)
	g.Expect(re.Referrer).To(Equal(sigTag))
	g.Expect(mirror.Classify(err)).To(Equal(mirror.KindUnreachable))
	g.Expect(mirror.SideOf(err)).To(Equal(mirror.SideDestination))
	g.Expect(head(t, dst).Digest).To(Equal(digest))

	e.dst.proxy.Clear()
	res, err := m.Copy(ctxT(t), src, dst)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.CacheHit).To(BeFalse(), "an image without its signature is not known present")
	g.Expect(res.AlreadyPresent).To(BeTrue())
	g.Expect(res.Referrers).To(Equal(mirror.Referrers{Found: 1, Copied: 1, BytesUploaded: res.Referrers.BytesUploaded}))
	g.Expect(head(t, dst.Context().Tag(sigTag)).Digest).To(Equal(sigDigest))

	// Complete now: the cache answers, and no referrer is looked for.
	e.rec.Reset()
	res, err = m.Copy(ctxT(t), src.Context().Digest(digest.String()), dst)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.CacheHit).To(BeTrue())
	g.Expect(e.rec.Requests()).To(BeEmpty())
}

// A source that is itself a copy made by an earlier version holds the image under its old
// digest tag, where the referrers tag schema would hold an index: that is no list of referrers.
func TestCopy_sourceDigestTagIsNoReferrersIndex(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	img := randomImage(t, 2)
	src, digest := e.push("library/app:1.0", img)
	e.push("library/app:"+digest.Algorithm+"-"+digest.Hex, img)
	dst := e.dst.ref(t, "backup/app:1.0")

	res, err := e.mirror().Copy(ctxT(t), src, dst)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Referrers).To(Equal(mirror.Referrers{}))
	g.Expect(e.rec.Count(e.src.host, http.MethodGet, mirrortest.KindManifest)).To(Equal(1), "the image's manifest only")
}

// The referrers of a cold copy travel on the copy's clients: its source Puller fetches the
// signature and its Pusher uploads it, and the requests go-containerregistry has no call for
// (the referrers API, the tag HEADs, the manifest PUTs) share the Pullers' transports. One
// ping on the source and two on the backup (the Puller's and the Pusher's), where the
// referrers made a Puller, a Pusher and an API client per side of their own (three and four).
func TestCopy_copiesReferrersWithTheCopysClients(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	src, digest := e.push("library/app:1.0", randomImage(t, 2))
	e.push("library/app:"+cosignTag(digest, "sig"), artifact(t, "application/vnd.dev.cosign.simplesigning.v1+json", nil))
	dst := e.dst.ref(t, "backup/app:1.0")
	e.dst.proxy.ResetCounts()

	res, err := e.mirror().Copy(ctxT(t), src, dst)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Referrers.Copied).To(Equal(1))
	g.Expect(e.src.proxy.Count(http.MethodGet, mirrortest.KindPing)).To(Equal(1))
	g.Expect(e.dst.proxy.Count(http.MethodGet, mirrortest.KindPing)).To(Equal(2))
	expectBackupEqualsSource(g, src.Context().Tag(cosignTag(digest, "sig")), dst.Context().Tag(cosignTag(digest, "sig")))
}

// A referrer's blobs are fetched with the sizes its manifest states: the source is not HEADed
// for them (it was, once a blob, for the upload's Content-Length).
func TestCopy_copiesReferrerBlobsWithoutHeadingTheSource(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	src, digest := e.push("library/app:1.0", randomImage(t, 2))
	sig := cosignTag(digest, "sig")
	e.push("library/app:"+sig, artifact(t, "application/vnd.dev.cosign.simplesigning.v1+json", nil))
	dst := e.dst.ref(t, "backup/app:1.0")

	res, err := e.mirror().Copy(ctxT(t), src, dst)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Referrers.Copied).To(Equal(1))
	g.Expect(e.src.proxy.Count(http.MethodHead, mirrortest.KindBlob)).To(Equal(0))
	g.Expect(e.src.proxy.Count(http.MethodGet, mirrortest.KindBlob)).To(Equal(5), "the image's three blobs, the signature's two")
	expectBackupEqualsSource(g, src.Context().Tag(sig), dst.Context().Tag(sig))
}

// A referrer whose manifest states a wrong size for a blob is not copied: the upload, which
// takes that size for its Content-Length instead of asking the source, fails as invalid, and
// so does the Copy, as for any referrer that cannot be copied.
func TestCopy_refusesAReferrerBlobOfAnotherSizeThanStated(t *testing.T) {
	for _, tc := range []struct {
		name  string
		delta int64
		says  string
	}{
		{"stated larger", 1, "has fewer bytes than the"},
		{"stated smaller", -1, "has more bytes than the"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			e := newEnv(t)
			src, digest := e.push("library/app:1.0", randomImage(t, 2))
			sig := e.src.ref(t, "library/app:"+cosignTag(digest, "sig"))
			pushTo(t, sig, artifact(t, "application/vnd.dev.cosign.simplesigning.v1+json", nil))
			mf, err := remote.Get(sig)
			g.Expect(err).NotTo(HaveOccurred())
			m, err := v1.ParseManifest(bytes.NewReader(mf.Manifest))
			g.Expect(err).NotTo(HaveOccurred())
			m.Layers[0].Size += tc.delta
			raw, err := json.Marshal(m)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(remote.Put(sig, rawManifest{raw: raw, mt: mf.MediaType})).To(Succeed())
			dst := e.dst.ref(t, "backup/app:1.0")

			_, err = e.mirror().Copy(ctxT(t), src, dst)

			var re *mirror.ReferrersError
			g.Expect(errors.As(err, &re)).To(BeTrue(), "%v", err)
			g.Expect(mirror.Classify(err)).To(Equal(mirror.KindInvalid), "%v", err)
			g.Expect(err.Error()).To(ContainSubstring(tc.says))
			_, err = remote.Head(dst.Context().Tag(cosignTag(digest, "sig")))
			g.Expect(err).To(HaveOccurred(), "the signature is not in the backup")
		})
	}
}
