package mirror_test

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	. "github.com/onsi/gomega"

	"github.com/image-cloner/image-cloner/pkg/mirror"
	"github.com/image-cloner/image-cloner/pkg/mirror/mirrortest"
)

func TestCopy_copiesMultiArchIndexWithAllChildren(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	idx, err := random.Index(2048, 2, 3)
	g.Expect(err).NotTo(HaveOccurred())
	src, digest := e.push("library/app:1.0", idx)
	dst := e.dst.ref(t, "backup/app:1.0")

	res, err := e.mirror().Copy(ctxT(t), src, dst)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Digest).To(Equal(digest))
	g.Expect(res.CacheHit).To(BeFalse())
	g.Expect(res.AlreadyPresent).To(BeFalse())
	expectBackupEqualsSource(g, src, dst)

	im, err := idx.IndexManifest()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(im.Manifests).To(HaveLen(3))
	wantSize := int64(len(mustRaw(t, idx)))
	blobs := 0
	var blobBytes int64
	for _, child := range im.Manifests {
		// Every platform is there, by digest, byte for byte.
		expectBackupEqualsSource(g, src.Context().Digest(child.Digest.String()), dst.Context().Digest(child.Digest.String()))
		img, err := idx.Image(child.Digest)
		g.Expect(err).NotTo(HaveOccurred())
		bs, total := blobsOf(t, img)
		for h := range bs {
			g.Expect(e.dst.reg.HasBlob("backup/app", h)).To(BeTrue(), "blob %s of %s", h, child.Digest)
		}
		blobs += len(bs)
		blobBytes += total
		wantSize += child.Size
	}
	g.Expect(res.BlobsUploaded).To(Equal(blobs))
	g.Expect(res.BytesUploaded).To(Equal(blobBytes))
	g.Expect(res.Size).To(Equal(wantSize + blobBytes))
	g.Expect(e.events.uploaded).To(Equal(blobBytes))
	g.Expect(e.events.started).To(Equal(1))
	g.Expect(e.events.finished).To(Equal(1))
	g.Expect(e.events.misses).To(Equal(1))
	g.Expect(e.events.requests).To(Equal(len(e.rec.Requests())), "the Observer hears of every request")
}

func TestCopy_preservesDigestOfEveryKindOfManifest(t *testing.T) {
	ociImage := mutate.MediaType(mutate.ConfigMediaType(randomImage(t, 2), types.OCIConfigJSON), types.OCIManifestSchema1)
	dockerImage := randomImage(t, 2) // random.Image makes Docker schema 2 images
	ociIndex, err := random.Index(512, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	dockerList := mutate.IndexMediaType(mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: dockerImage, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
	), types.DockerManifestList)
	nested := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: ociIndex})

	for _, tc := range []struct {
		name      string
		image     remote.Taggable
		mediaType types.MediaType
	}{
		{"OCI image", ociImage, types.OCIManifestSchema1},
		{"Docker schema 2 image", dockerImage, types.DockerManifestSchema2},
		{"OCI index", ociIndex, types.OCIImageIndex},
		{"Docker manifest list", dockerList, types.DockerManifestList},
		{"index of an index", nested, types.OCIImageIndex},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			e := newEnv(t)
			src, digest := e.push("x/image:tag", tc.image)
			dst := e.dst.ref(t, "backup/image:tag")

			res, err := e.mirror().Copy(ctxT(t), src, dst)

			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Digest).To(Equal(digest))
			g.Expect(res.MediaType).To(Equal(tc.mediaType))
			expectBackupEqualsSource(g, src, dst)
		})
	}
}

func TestCopy_reCopyOfPresentImageMakesNoSourceGet(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	src, digest := e.push("library/app:1.0", randomImage(t, 3))
	dst := e.dst.ref(t, "backup/app:1.0")
	_, err := e.mirror().Copy(ctxT(t), src, dst)
	g.Expect(err).NotTo(HaveOccurred())

	// A new Mirror (e.g. after a restart) knows nothing: the backup registry must tell.
	e.rec.Reset()
	e.dst.proxy.ResetCounts()
	res, err := e.mirror().Copy(ctxT(t), src, dst)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res).To(Equal(mirror.Result{Digest: digest, MediaType: types.DockerManifestSchema2, Size: res.Size, AlreadyPresent: true}))
	g.Expect(e.rec.Count(e.src.host, http.MethodGet, mirrortest.KindManifest)).To(Equal(0), "manifest GETs are Docker Hub pulls")
	g.Expect(e.rec.Count(e.src.host, http.MethodGet, mirrortest.KindBlob)).To(Equal(0))
	// One HEAD resolves the tag; looking for referrers (WithReferrers) costs three more, for
	// cosign's tags, a referrers API request and, since this registry has no referrers API, a
	// HEAD of the referrers tag schema's tag: still no GET.
	g.Expect(e.rec.Count(e.src.host, http.MethodHead, mirrortest.KindManifest)).To(Equal(1 + 3 + 1))
	g.Expect(e.rec.Count(e.src.host, http.MethodGet, mirrortest.KindReferrers)).To(Equal(1))
	g.Expect(e.dst.proxy.Count(http.MethodHead, mirrortest.KindManifest)).To(Equal(2), "the tag, then its digest tag")
	g.Expect(e.dst.proxy.Count(http.MethodPut, mirrortest.KindAny)).To(Equal(0))
	g.Expect(e.dst.proxy.Count(http.MethodPost, mirrortest.KindAny)).To(Equal(0))
}

func TestCopy_cachedImageMakesNoRequest(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	srcTag, digest := e.push("library/app:1.0", randomImage(t, 2))
	dst := e.dst.ref(t, "backup/app:1.0")
	m := e.mirror()
	first, err := m.Copy(ctxT(t), srcTag, dst)
	g.Expect(err).NotTo(HaveOccurred())

	t.Run("source by digest: no request at all", func(t *testing.T) {
		g := NewWithT(t)
		e.rec.Reset()
		res, err := m.Copy(ctxT(t), srcTag.Context().Digest(digest.String()), dst)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.CacheHit).To(BeTrue())
		g.Expect(res.Size).To(Equal(first.Size))
		g.Expect(e.rec.Requests()).To(BeEmpty())
	})
	t.Run("source by tag: the tag is resolved with a HEAD, the backup registry is not asked", func(t *testing.T) {
		g := NewWithT(t)
		e.rec.Reset()
		res, err := m.Copy(ctxT(t), srcTag, dst)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res.CacheHit).To(BeTrue())
		g.Expect(e.rec.Count(e.dst.host, "", mirrortest.KindAny)).To(Equal(0))
		g.Expect(e.rec.Count(e.src.host, "", mirrortest.KindManifest)).To(Equal(1))
		g.Expect(e.rec.Count(e.src.host, http.MethodHead, mirrortest.KindManifest)).To(Equal(1))
	})
	t.Run("Present answers from the cache", func(t *testing.T) {
		g := NewWithT(t)
		e.rec.Reset()
		ok, err := m.Present(ctxT(t), dst, digest)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ok).To(BeTrue())
		g.Expect(e.rec.Requests()).To(BeEmpty())
	})
}

func TestCopy_findsPrunedBackupAfterTTLAndCopiesAgain(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	src, digest := e.push("library/app:1.0", randomImage(t, 2))
	dst := e.dst.ref(t, "backup/app:1.0")
	m := e.mirror(mirror.WithCacheTTL(time.Minute))
	_, err := m.Copy(ctxT(t), src, dst)
	g.Expect(err).NotTo(HaveOccurred())

	// Someone prunes the backup.
	g.Expect(remote.Delete(dst)).To(Succeed())
	_, err = remote.Head(dst)
	g.Expect(err).To(HaveOccurred())

	// Within the TTL the cache is trusted...
	e.clock.Advance(59 * time.Second)
	res, err := m.Copy(ctxT(t), src, dst)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.CacheHit).To(BeTrue())

	// ...after it, one HEAD finds the loss and the image is copied again.
	e.clock.Advance(2 * time.Second)
	present, err := m.Present(ctxT(t), dst, digest)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(present).To(BeFalse())

	res, err = m.Copy(ctxT(t), src, dst)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.CacheHit).To(BeFalse())
	g.Expect(res.AlreadyPresent).To(BeFalse())
	// The blobs were not pruned, only the tag: nothing is uploaded twice.
	g.Expect(res.BlobsUploaded).To(Equal(0))
	g.Expect(res.BlobsSkipped).To(Equal(3))
	g.Expect(head(t, dst).Digest).To(Equal(digest))
}

func TestForget_makesTheNextLookupAskTheRegistry(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	src, digest := e.push("library/app:1.0", randomImage(t, 1))
	dst := e.dst.ref(t, "backup/app:1.0")
	m := e.mirror()
	_, err := m.Copy(ctxT(t), src, dst)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(remote.Delete(dst)).To(Succeed())

	m.Forget(dst)
	present, err := m.Present(ctxT(t), dst, digest)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(present).To(BeFalse())
}

func TestCopy_concurrentCallsCopyOnce(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	img := randomImage(t, 4)
	src, digest := e.push("library/app:1.0", img)
	dst := e.dst.ref(t, "backup/app:1.0")
	m := e.mirror()
	// Slow down the backup registry's first answer so that the calls overlap.
	e.dst.proxy.Add(mirrortest.Fault{Method: http.MethodHead, Kind: mirrortest.KindManifest, Delay: 50 * time.Millisecond, Times: 1})

	ctx := ctxT(t)
	results := make([]mirror.Result, 10)
	errs := make([]error, 10)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range results {
		wg.Go(func() {
			<-start
			results[i], errs[i] = m.Copy(ctx, src, dst)
		})
	}
	close(start)
	wg.Wait()

	copies := 0
	for i := range results {
		g.Expect(errs[i]).NotTo(HaveOccurred())
		g.Expect(results[i].Digest).To(Equal(digest))
		if !results[i].Shared && !results[i].CacheHit {
			copies++
		}
	}
	g.Expect(copies).To(Equal(1))
	blobs, _ := blobsOf(t, img)
	// Each blob is committed once (PUT), the manifest once under its tag and once under its
	// digest tag.
	g.Expect(e.dst.proxy.Count(http.MethodPut, mirrortest.KindUpload)).To(Equal(len(blobs)))
	g.Expect(e.dst.proxy.Count(http.MethodPut, mirrortest.KindManifest)).To(Equal(2))
	g.Expect(e.rec.Count(e.src.host, http.MethodGet, mirrortest.KindManifest)).To(Equal(1))
}

func TestCopy_concurrentTagsOfOneDigestUploadOnce(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	img := randomImage(t, 3)
	src, digest := e.push("library/app:1.0", img)
	m := e.mirror()
	// Slow blob checks, so that copies racing each other would all find the blobs missing.
	e.dst.proxy.Add(mirrortest.Fault{Method: http.MethodHead, Kind: mirrortest.KindBlob, Delay: 20 * time.Millisecond})
	tags := []string{"1.0", "1", "latest"}

	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make([]error, len(tags))
	for i, tag := range tags {
		dst := e.dst.ref(t, "backup/app:"+tag)
		wg.Go(func() { _, errs[i] = m.Copy(ctx, src, dst) })
	}
	wg.Wait()

	for i, tag := range tags {
		g.Expect(errs[i]).NotTo(HaveOccurred())
		g.Expect(head(t, e.dst.ref(t, "backup/app:"+tag)).Digest).To(Equal(digest))
	}
	blobs, _ := blobsOf(t, img)
	g.Expect(e.dst.proxy.Count(http.MethodPut, mirrortest.KindUpload)).To(Equal(len(blobs)))
}

func TestCopy_mountsBlobsSharedWithAnotherRepository(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	base, err := random.Layer(4096, types.OCILayer)
	g.Expect(err).NotTo(HaveOccurred())
	baseDigest, err := base.Digest()
	g.Expect(err).NotTo(HaveOccurred())
	baseSize, err := base.Size()
	g.Expect(err).NotTo(HaveOccurred())
	img1, err := mutate.AppendLayers(randomImage(t, 1), base)
	g.Expect(err).NotTo(HaveOccurred())
	img2, err := mutate.AppendLayers(randomImage(t, 1), base)
	g.Expect(err).NotTo(HaveOccurred())
	src1, _ := e.push("team/one:1", img1)
	src2, d2 := e.push("team/two:1", img2)
	m := e.mirror()

	first, err := m.Copy(ctxT(t), src1, e.dst.ref(t, "backup/one:1"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(first.BlobsUploaded).To(Equal(3))
	g.Expect(first.BlobsMounted).To(Equal(0))

	e.rec.Reset()
	second, err := m.Copy(ctxT(t), src2, e.dst.ref(t, "backup/two:1"))

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(second.Digest).To(Equal(d2))
	g.Expect(second.BlobsMounted).To(Equal(1))
	g.Expect(second.BytesMounted).To(Equal(baseSize))
	g.Expect(second.BlobsUploaded).To(Equal(2), "the config and the other layer")
	g.Expect(e.events.mounted).To(Equal(baseSize))
	g.Expect(e.dst.reg.HasBlob("backup/two", baseDigest)).To(BeTrue())
	// The shared layer was not read from the source the second time.
	for _, r := range e.rec.Requests() {
		if r.Host == e.src.host {
			g.Expect(r.Path).NotTo(HaveSuffix(baseDigest.String()), "%s %s%s", r.Method, r.Host, r.Path)
		}
	}
	expectBackupEqualsSource(g, src2, e.dst.ref(t, "backup/two:1"))
}

func TestCopy_uploadsWhenTheMountSourceIsGone(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	base, err := random.Layer(4096, types.OCILayer)
	g.Expect(err).NotTo(HaveOccurred())
	baseDigest, err := base.Digest()
	g.Expect(err).NotTo(HaveOccurred())
	img1, err := mutate.AppendLayers(randomImage(t, 1), base)
	g.Expect(err).NotTo(HaveOccurred())
	img2, err := mutate.AppendLayers(randomImage(t, 1), base)
	g.Expect(err).NotTo(HaveOccurred())
	src1, _ := e.push("team/one:1", img1)
	src2, _ := e.push("team/two:1", img2)
	m := e.mirror()
	_, err = m.Copy(ctxT(t), src1, e.dst.ref(t, "backup/one:1"))
	g.Expect(err).NotTo(HaveOccurred())

	// The blob disappears from the repository the Mirror would mount it from.
	deleteBlob(t, e.dst.ref(t, "backup/one:1").Context(), baseDigest)
	res, err := m.Copy(ctxT(t), src2, e.dst.ref(t, "backup/two:1"))

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.BlobsMounted).To(Equal(0))
	g.Expect(res.BlobsUploaded).To(Equal(3))
	g.Expect(e.dst.reg.HasBlob("backup/two", baseDigest)).To(BeTrue())
	expectBackupEqualsSource(g, src2, e.dst.ref(t, "backup/two:1"))
}

func TestCopy_skipsForeignLayers(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	foreign, err := random.Layer(1024, types.DockerForeignLayer)
	g.Expect(err).NotTo(HaveOccurred())
	foreignDigest, err := foreign.Digest()
	g.Expect(err).NotTo(HaveOccurred())
	base := mutate.MediaType(mutate.ConfigMediaType(randomImage(t, 1), types.DockerConfigJSON), types.DockerManifestSchema2)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     foreign,
		MediaType: types.DockerForeignLayer,
		URLs:      []string{"https://mcr.microsoft.com/v2/windows/servercore/blobs/" + foreignDigest.String()},
	})
	g.Expect(err).NotTo(HaveOccurred())
	// Like a Windows base image: the registry does not hold the foreign layer.
	src, digest := e.push("windows/app:1", img)
	g.Expect(e.src.reg.HasBlob("windows/app", foreignDigest)).To(BeFalse())
	dst := e.dst.ref(t, "backup/app:1")

	res, err := e.mirror().Copy(ctxT(t), src, dst)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Digest).To(Equal(digest))
	g.Expect(res.BlobsForeign).To(Equal(1))
	g.Expect(res.BlobsUploaded).To(Equal(2))
	g.Expect(e.dst.reg.HasBlob("backup/app", foreignDigest)).To(BeFalse())
	for _, r := range e.rec.Requests() {
		g.Expect(r.Path).NotTo(HaveSuffix(foreignDigest.String()))
	}
	expectBackupEqualsSource(g, src, dst)
}

func TestCopy_detectsDigestMismatch(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	src, digest := e.push("library/app:1.0", randomImage(t, 1))
	dst := e.dst.ref(t, "backup/app:1.0")
	other := v1.Hash{Algorithm: "sha256", Hex: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	// The backup registry claims another digest for what it stores, as one that rewrites
	// manifests would.
	e.dst.proxy.Add(mirrortest.Fault{Method: http.MethodHead, Kind: mirrortest.KindManifest, Digest: other.String()})
	m := e.mirror()

	_, err := m.Copy(ctxT(t), src, dst)

	var mismatch *mirror.DigestMismatchError
	g.Expect(err).To(MatchError(ContainSubstring(other.String())))
	g.Expect(errors.As(err, &mismatch)).To(BeTrue())
	g.Expect(mismatch.Want).To(Equal(digest))
	g.Expect(mismatch.Got).To(Equal(other))
	g.Expect(mirror.Classify(err)).To(Equal(mirror.KindDigestMismatch))

	// Nothing was cached: the next lookup asks the registry again.
	e.rec.Reset()
	_, _ = m.Present(ctxT(t), dst, digest)
	g.Expect(e.rec.Count(e.dst.host, http.MethodHead, mirrortest.KindManifest)).To(Equal(1))
}

func TestCopy_rejectsDigestDestinationOfAnotherImage(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	src, _ := e.push("library/app:1.0", randomImage(t, 1))
	_, other := e.push("library/other:1.0", randomImage(t, 1))

	_, err := e.mirror().Copy(ctxT(t), src, e.dst.ref(t, "backup/app@"+other.String()))

	g.Expect(err).To(HaveOccurred())
	g.Expect(mirror.Classify(err)).To(Equal(mirror.KindInvalid))
}

func TestCopy_copiesToDigestReference(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	src, digest := e.push("library/app:1.0", randomImage(t, 1))
	dst := e.dst.ref(t, "backup/app@"+digest.String())

	res, err := e.mirror().Copy(ctxT(t), src, dst)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Digest).To(Equal(digest))
	expectBackupEqualsSource(g, src, dst)
}

func deleteBlob(t *testing.T, repo name.Repository, h v1.Hash) {
	t.Helper()
	req, err := http.NewRequest(http.MethodDelete, "http://"+repo.RegistryStr()+"/v2/"+repo.RepositoryStr()+"/blobs/"+h.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("deleting blob %s: %s", h, resp.Status)
	}
}

func mustRaw(t *testing.T, x interface{ RawManifest() ([]byte, error) }) []byte {
	t.Helper()
	b, err := x.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCopy_concurrentCopiesUploadASharedLayerOnce(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	base, err := random.Layer(64<<10, types.OCILayer)
	g.Expect(err).NotTo(HaveOccurred())
	baseSize, err := base.Size()
	g.Expect(err).NotTo(HaveOccurred())
	const apps = 4
	srcs := make([]name.Reference, apps)
	for i := range srcs {
		img, err := mutate.AppendLayers(randomImage(t, 1), base)
		g.Expect(err).NotTo(HaveOccurred())
		srcs[i], _ = e.push(fmt.Sprintf("team/app%d:1", i), img)
	}
	m := e.mirror()
	// Slow uploads, so that every copy starts before the first one has the base layer.
	e.dst.proxy.Add(mirrortest.Fault{Method: http.MethodPut, Kind: mirrortest.KindUpload, Delay: 50 * time.Millisecond})

	ctx := ctxT(t)
	results := make([]mirror.Result, apps)
	errs := make([]error, apps)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range srcs {
		wg.Go(func() {
			<-start
			results[i], errs[i] = m.Copy(ctx, srcs[i], e.dst.ref(t, fmt.Sprintf("backup/app%d:1", i)))
		})
	}
	close(start)
	wg.Wait()

	var uploaded, mounted int64
	for i := range results {
		g.Expect(errs[i]).NotTo(HaveOccurred())
		uploaded += results[i].BytesUploaded
		mounted += results[i].BytesMounted
		expectBackupEqualsSource(g, srcs[i], e.dst.ref(t, fmt.Sprintf("backup/app%d:1", i)))
	}
	// Each app's own layer and config, and the base once; the other copies mount the base.
	g.Expect(e.dst.proxy.Count(http.MethodPut, mirrortest.KindUpload)).To(Equal(2*apps + 1))
	g.Expect(mounted).To(Equal((apps - 1) * baseSize))
}

func TestCopy_tagsEveryCopyByItsDigest(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []mirror.Option
		dst  func(digest string) string
		want bool
	}{
		{"a tag", nil, func(string) string { return "backup/app:1.0" }, true},
		{"a digest reference, which no tag would keep", nil, func(d string) string { return "backup/app@" + d }, true},
		{"turned off (the control)", []mirror.Option{mirror.WithDigestTags(false)}, func(string) string { return "backup/app:1.0" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			e := newEnv(t)
			src, digest := e.push("library/app:1.0", randomImage(t, 1))
			dst := e.dst.ref(t, tc.dst(digest.String()))

			_, err := e.mirror(tc.opts...).Copy(ctxT(t), src, dst)

			g.Expect(err).NotTo(HaveOccurred())
			tag := dst.Context().Tag(mirror.DigestTag(digest))
			g.Expect(tag.TagStr()).To(Equal("digest-sha256-" + digest.Hex))
			_, err = remote.Head(tag)
			if !tc.want {
				g.Expect(err).To(HaveOccurred())
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(head(t, tag).Digest).To(Equal(digest))
		})
	}
}

// A backup made without digest tags (by an older version, say) gets its digest tag the next
// time it is checked, from the manifest in the backup registry: its source may be gone.
func TestPresent_addsAMissingDigestTagFromTheBackup(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	src, digest := e.push("library/app:1.0", randomImage(t, 2))
	dst := e.dst.ref(t, "backup/app:1.0")
	_, err := e.mirror(mirror.WithDigestTags(false)).Copy(ctxT(t), src, dst)
	g.Expect(err).NotTo(HaveOccurred())
	tag := dst.Context().Tag(mirror.DigestTag(digest))
	_, err = remote.Head(tag)
	g.Expect(err).To(HaveOccurred())
	e.src.proxy.Add(mirrortest.Fault{Status: http.StatusServiceUnavailable}) // upstream is down
	e.rec.Reset()

	present, err := e.mirror().Present(ctxT(t), dst, digest)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(present).To(BeTrue())
	g.Expect(head(t, tag).Digest).To(Equal(digest))
	g.Expect(e.rec.Count(e.src.host, "", mirrortest.KindAny)).To(Equal(0), "nothing is asked of the source")
}

// A cold copy pings the backup registry twice: once for its Puller, whose first request is the
// HEAD that finds the image missing and whose last is the verify HEAD, and once for its Pusher,
// which pushes the image and its digest tag. Every remote call used to start a transport of its
// own and ping again (five), then the calls after the push shared two (three).
func TestCopy_reusesTheCopysClientsAfterThePush(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	src, _ := e.push("library/app:1.0", randomImage(t, 2))
	dst := e.dst.ref(t, "backup/app:1.0")
	e.dst.proxy.ResetCounts()
	_, err := e.mirror(mirror.WithReferrers(false)).Copy(ctxT(t), src, dst)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.dst.proxy.Count(http.MethodGet, mirrortest.KindPing)).To(Equal(2))
	g.Expect(e.dst.proxy.Count(http.MethodPut, mirrortest.KindManifest)).To(Equal(2), "the image, then its digest tag")
	g.Expect(e.dst.proxy.Count(http.MethodHead, mirrortest.KindManifest)).To(Equal(3),
		"the check that finds the image missing and the verify HEADs of the tag and the digest tag")
}

// The push does not HEAD the tag again (go-containerregistry's Pusher.Push does, before
// anything else): the check a moment earlier found it missing. The children of an index are
// still looked for, by digest, since another tag may hold them, and every blob too.
func TestCopy_pushesWithoutHeadingTheTagAgain(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	idx, err := random.Index(512, 2, 2)
	g.Expect(err).NotTo(HaveOccurred())
	src, digest := e.push("library/app:1.0", idx)
	dst := e.dst.ref(t, "backup/app:1.0")

	res, err := e.mirror(mirror.WithReferrers(false)).Copy(ctxT(t), src, dst)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.BlobsUploaded).To(Equal(6))
	g.Expect(e.dst.proxy.Count(http.MethodHead, mirrortest.KindManifest)).To(Equal(5),
		"the check, the two images by digest, and the verify HEADs of the tag and the digest tag")
	g.Expect(e.dst.proxy.Count(http.MethodHead, mirrortest.KindBlob)).To(Equal(6))
	g.Expect(e.dst.proxy.Count(http.MethodPut, mirrortest.KindManifest)).To(Equal(4), "two images, the index, its digest tag")
	expectBackupEqualsSource(g, src, dst)
	g.Expect(head(t, dst.Context().Tag(mirror.DigestTag(digest))).Digest).To(Equal(digest))
}

// A Copy that finds the image in the backup without its digest tag (written by an older
// version, say) adds the tag from the backup's manifest with the Puller and Pusher of the HEAD
// that found the image: two pings, where each call pinged on its own (five).
func TestCopy_addsAMissingDigestTagWithTheCopysClients(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	src, digest := e.push("library/app:1.0", randomImage(t, 2))
	dst := e.dst.ref(t, "backup/app:1.0")
	_, err := e.mirror(mirror.WithDigestTags(false), mirror.WithReferrers(false)).Copy(ctxT(t), src, dst)
	g.Expect(err).NotTo(HaveOccurred())
	e.dst.proxy.ResetCounts()

	res, err := e.mirror(mirror.WithReferrers(false)).Copy(ctxT(t), src, dst)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.AlreadyPresent).To(BeTrue())
	g.Expect(e.dst.proxy.Count(http.MethodGet, mirrortest.KindPing)).To(Equal(2))
	g.Expect(e.dst.proxy.Count(http.MethodGet, mirrortest.KindManifest)).To(Equal(1), "the manifest read back from the backup")
	g.Expect(e.dst.proxy.Count(http.MethodPut, mirrortest.KindManifest)).To(Equal(1), "the digest tag")
	g.Expect(head(t, dst.Context().Tag(mirror.DigestTag(digest))).Digest).To(Equal(digest))
}

// A cold copy by tag pings the source registry once: the Resolve HEAD and the copy's GETs
// (manifests and blobs, here of an index and its images) share one Puller, where each used
// to start a transport of its own (two pings).
func TestCopy_resolvesAndCopiesWithOneSourcePuller(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	idx, err := random.Index(512, 2, 2)
	g.Expect(err).NotTo(HaveOccurred())
	src, _ := e.push("library/app:1.0", idx)
	dst := e.dst.ref(t, "backup/app:1.0")

	res, err := e.mirror(mirror.WithReferrers(false)).Copy(ctxT(t), src, dst)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.BlobsUploaded).To(Equal(6), "the blobs are still counted: the stats see the shared Puller's requests")
	g.Expect(e.src.proxy.Count(http.MethodGet, mirrortest.KindPing)).To(Equal(1))
	g.Expect(e.src.proxy.Count(http.MethodHead, mirrortest.KindManifest)).To(Equal(1), "the Resolve HEAD")
	g.Expect(e.src.proxy.Count(http.MethodGet, mirrortest.KindManifest)).To(Equal(3), "the index and its two images")
	expectBackupEqualsSource(g, src, dst)
}
