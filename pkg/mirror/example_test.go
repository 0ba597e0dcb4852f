package mirror_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/image-cloner/image-cloner/pkg/mirror"
)

// newRegistry starts an in-memory registry (with the referrers API) and returns its host.
func newRegistry() (host string, stop func()) {
	s := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true)))
	return strings.TrimPrefix(s.URL, "http://"), s.Close
}

// Copy copies an image once; asking again is answered from memory.
func ExampleMirror_Copy() {
	ctx := context.Background()
	srcHost, stopSrc := newRegistry()
	defer stopSrc()
	dstHost, stopDst := newRegistry()
	defer stopDst()

	img, _ := random.Image(1024, 2)
	from, _ := name.ParseReference(srcHost + "/library/app:1.0")
	_ = remote.Write(from, img)
	to, _ := name.ParseReference(dstHost + "/backups/app:1.0")

	m, err := mirror.New(mirror.WithMaxConcurrentCopies(2))
	if err != nil {
		panic(err)
	}
	res, err := m.Copy(ctx, from, to)
	if err != nil {
		panic(err)
	}
	want, _ := img.Digest()
	fmt.Println("same digest:", res.Digest == want, "blobs uploaded:", res.BlobsUploaded)

	again, _ := m.Copy(ctx, from, to)
	fmt.Println("second copy from the cache:", again.CacheHit)

	tagged, _ := remote.Head(to.Context().Tag(mirror.DigestTag(want)))
	fmt.Println("tagged by digest:", tagged.Digest == want)
	// Output:
	// same digest: true blobs uploaded: 3
	// second copy from the cache: true
	// tagged by digest: true
}

// Classify and SideOf tell what to do about an error, and whose registry to look at.
func ExampleSideOf() {
	ctx := context.Background()
	host, stop := newRegistry()
	defer stop()

	m, _ := mirror.New(mirror.WithRetry(1, 0, 0))
	from, _ := name.ParseReference(host + "/library/missing:1")
	to, _ := name.ParseReference(host + "/backups/missing:1")
	_, err := m.Copy(ctx, from, to)
	fmt.Println(mirror.Classify(err), "on the", mirror.SideOf(err), "side")
	// Output:
	// NotFound on the Source side
}

// Resolve finds the digest a tag points to with one HEAD; Present asks whether a copy holds
// it, and Forget makes the next question go to the registry again.
func ExampleMirror_Present() {
	ctx := context.Background()
	host, stop := newRegistry()
	defer stop()
	img, _ := random.Image(1024, 1)
	from, _ := name.ParseReference(host + "/library/app:1.0")
	_ = remote.Write(from, img)
	to, _ := name.ParseReference(host + "/copies/app:1.0")

	m, _ := mirror.New()
	r, _ := m.Resolve(ctx, from)
	want, _ := img.Digest()
	fmt.Println("resolved:", r.Digest == want, r.MediaType)

	present, _ := m.Present(ctx, to, r.Digest)
	fmt.Println("present before the copy:", present)
	_, _ = m.Copy(ctx, from, to)
	present, _ = m.Present(ctx, to, r.Digest)
	fmt.Println("present after the copy:", present)

	// Someone deletes the copy's tag; the Mirror's memory still says it is there until told.
	_ = remote.Delete(to)
	m.Forget(to)
	present, _ = m.Present(ctx, to, r.Digest)
	fmt.Println("present after a delete:", present)
	// Output:
	// resolved: true application/vnd.docker.distribution.manifest.v2+json
	// present before the copy: false
	// present after the copy: true
	// present after a delete: false
}

// With WithReferrers (the default), a cosign signature under its tag and an OCI 1.1 referrer
// (a manifest whose subject is the image) are copied with the image, unchanged.
func ExampleWithReferrers() {
	ctx := context.Background()
	srcHost, stopSrc := newRegistry()
	defer stopSrc()
	dstHost, stopDst := newRegistry()
	defer stopDst()
	img, _ := random.Image(1024, 1)
	digest, _ := img.Digest()
	from, _ := name.ParseReference(srcHost + "/library/app:1.0")
	_ = remote.Write(from, img)
	// cosign keeps signatures of sha256:<hex> under the tag sha256-<hex>.sig.
	sig, _ := random.Image(128, 1)
	sigTag := digest.Algorithm + "-" + digest.Hex + ".sig"
	_ = remote.Write(from.Context().Tag(sigTag), sig)
	// An SBOM attached as an OCI referrer.
	sbom, _ := random.Image(128, 1)
	mt, _ := img.MediaType()
	size, _ := img.Size()
	sbom = mutate.Subject(mutate.ConfigMediaType(mutate.MediaType(sbom, types.OCIManifestSchema1), "application/spdx+json"),
		v1.Descriptor{MediaType: mt, Digest: digest, Size: size}).(v1.Image)
	sbomDigest, _ := sbom.Digest()
	_ = remote.Write(from.Context().Digest(sbomDigest.String()), sbom)
	to, _ := name.ParseReference(dstHost + "/copies/app:1.0")

	m, _ := mirror.New(mirror.WithReferrers(true))
	res, err := m.Copy(ctx, from, to)
	if err != nil {
		panic(err)
	}
	fmt.Println("referrers found:", res.Referrers.Found, "copied:", res.Referrers.Copied)

	got, _ := remote.Head(to.Context().Tag(sigTag))
	want, _ := sig.Digest()
	fmt.Println("signature tag, same digest:", got.Digest == want)
	idx, _ := remote.Referrers(to.Context().Digest(digest.String()))
	listed, _ := idx.IndexManifest()
	fmt.Println("referrers listed in the copy:", len(listed.Manifests), listed.Manifests[0].Digest == sbomDigest, listed.Manifests[0].ArtifactType)
	// Output:
	// referrers found: 2 copied: 2
	// signature tag, same digest: true
	// referrers listed in the copy: 1 true application/spdx+json
}

// DigestTag is the tag every copy also gets (WithDigestTags), so that registries that
// garbage-collect untagged manifests keep a digest whose tag moved.
func ExampleDigestTag() {
	h, _ := v1.NewHash("sha256:" + strings.Repeat("ab", 32))
	fmt.Println(mirror.DigestTag(h))
	// Output:
	// digest-sha256-abababababababababababababababababababababababababababababababab
}
