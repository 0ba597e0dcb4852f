package mirror_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	. "github.com/onsi/gomega"

	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/dockerconfig"
	"github.com/image-cloner/image-cloner/pkg/mirror"
	"github.com/image-cloner/image-cloner/pkg/mirror/mirrortest"
)

// These tests copy into real CNCF distribution registries (v3, the version hack/test-deps.sh
// builds), anonymous and with htpasswd auth, where the in-process registry of the unit tests
// could hide a difference: authentication, cross-repository mounts, schema 1 refusal, deletes.

func skipIfShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts distribution registries; skipped with -short")
	}
}

func distRef(t *testing.T, r *testenv.Registry, ref string) name.Reference {
	t.Helper()
	parsed, err := name.ParseReference(r.Host + "/" + ref)
	if err != nil {
		t.Fatal(err)
	}
	return parsed
}

func basicKeychain(user, password string) authn.Keychain {
	return staticKeychain{user: user, password: password}
}

func TestIntegration_copiesMultiArchIndexIntoDistribution(t *testing.T) {
	skipIfShort(t)
	g := NewWithT(t)
	src := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "source"})
	dst := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "backup", Auth: true})
	idx, err := random.Index(4096, 2, 3)
	g.Expect(err).NotTo(HaveOccurred())
	srcRef := distRef(t, src, "library/app:1.0")
	g.Expect(remote.WriteIndex(srcRef, idx)).To(Succeed())
	digest, err := idx.Digest()
	g.Expect(err).NotTo(HaveOccurred())
	dstRef := distRef(t, dst, "backup/library/app:1.0")
	keychain, err := dockerconfig.Keychain(dst.DockerConfigJSON())
	g.Expect(err).NotTo(HaveOccurred())
	newMirror := func() *mirror.Mirror {
		m, err := mirror.New(mirror.WithTargetKeychain(keychain), mirror.WithRetry(3, 10*time.Millisecond, 100*time.Millisecond))
		g.Expect(err).NotTo(HaveOccurred())
		return m
	}

	res, err := newMirror().Copy(ctxT(t), srcRef, dstRef)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Digest).To(Equal(digest))
	auth := remote.WithAuthFromKeychain(keychain)
	got, err := remote.Get(dstRef, auth)
	g.Expect(err).NotTo(HaveOccurred())
	want, err := idx.RawManifest()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(got.Manifest)).To(Equal(string(want)))
	im, err := idx.IndexManifest()
	g.Expect(err).NotTo(HaveOccurred())
	for _, child := range im.Manifests {
		d, err := remote.Head(dstRef.Context().Digest(child.Digest.String()), auth)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(d.Digest).To(Equal(child.Digest))
	}

	// A fresh Mirror asks the backup registry once and does not pull the source again.
	getsBefore, err := src.CountRequests(http.MethodGet, "/manifests/")
	g.Expect(err).NotTo(HaveOccurred())
	res, err = newMirror().Copy(ctxT(t), srcRef, dstRef)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.AlreadyPresent).To(BeTrue())
	getsAfter, err := src.CountRequests(http.MethodGet, "/manifests/")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(getsAfter).To(Equal(getsBefore))
}

func TestIntegration_backupCredentials(t *testing.T) {
	skipIfShort(t)
	src := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "source"})
	dst := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "backup", Auth: true})
	srcRef := distRef(t, src, "library/app:1.0")
	if err := remote.Write(srcRef, randomImage(t, 2)); err != nil {
		t.Fatal(err)
	}
	const wrong = "not-the-Password-42"

	for _, tc := range []struct {
		name     string
		keychain func() authn.Keychain
		wantErr  bool
	}{
		{"right credentials from a dockerconfigjson", func() authn.Keychain {
			k, err := dockerconfig.Keychain(dst.DockerConfigJSON())
			if err != nil {
				t.Fatal(err)
			}
			return k
		}, false},
		{"wrong password", func() authn.Keychain { return basicKeychain(dst.Username, wrong) }, true},
		{"no credentials", func() authn.Keychain { return authn.NewMultiKeychain() }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			m, err := mirror.New(mirror.WithTargetKeychain(tc.keychain()), mirror.WithRetry(2, 10*time.Millisecond, 50*time.Millisecond))
			g.Expect(err).NotTo(HaveOccurred())
			dstRef := distRef(t, dst, "backup/"+strings.ReplaceAll(tc.name, " ", "-")+":1.0")

			res, err := m.Copy(ctxT(t), srcRef, dstRef)

			if !tc.wantErr {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(res.BlobsUploaded).To(Equal(3))
				return
			}
			g.Expect(err).To(HaveOccurred())
			t.Logf("error: %v", err)
			g.Expect(mirror.Classify(err)).To(Equal(mirror.KindUnauthorized), "%v", err)
			g.Expect(err.Error()).To(ContainSubstring("backup registry " + dst.Host + " refused the push credentials"))
			g.Expect(err.Error()).NotTo(ContainSubstring(wrong))
			g.Expect(err.Error()).NotTo(ContainSubstring(dst.Password))
		})
	}
}

func TestIntegration_mountsSharedLayersAcrossRepositories(t *testing.T) {
	skipIfShort(t)
	g := NewWithT(t)
	src := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "source"})
	dst := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "backup", Auth: true})
	base, err := random.Layer(64*1024, types.DockerLayer)
	g.Expect(err).NotTo(HaveOccurred())
	baseSize, err := base.Size()
	g.Expect(err).NotTo(HaveOccurred())
	var srcRefs []name.Reference
	for _, app := range []string{"one", "two"} {
		img, err := mutate.AppendLayers(randomImage(t, 1), base)
		g.Expect(err).NotTo(HaveOccurred())
		r := distRef(t, src, "team/"+app+":1")
		g.Expect(remote.Write(r, img)).To(Succeed())
		srcRefs = append(srcRefs, r)
	}
	m, err := mirror.New(mirror.WithTargetKeychain(basicKeychain(dst.Username, dst.Password)))
	g.Expect(err).NotTo(HaveOccurred())

	first, err := m.Copy(ctxT(t), srcRefs[0], distRef(t, dst, "backup/team/one:1"))
	g.Expect(err).NotTo(HaveOccurred())
	second, err := m.Copy(ctxT(t), srcRefs[1], distRef(t, dst, "backup/team/two:1"))
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(first.BlobsMounted).To(Equal(0))
	g.Expect(second.BlobsMounted).To(Equal(1))
	g.Expect(second.BytesMounted).To(Equal(baseSize))
	g.Expect(second.BlobsUploaded).To(Equal(2))
	mounts, err := dst.CountRequests(http.MethodPost, "/v2/backup/team/two/blobs/uploads/", "mount=", "from=backup%2Fteam%2Fone")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(mounts).To(Equal(1))
}

func TestIntegration_schema1RefusedByDistribution(t *testing.T) {
	skipIfShort(t)
	g := NewWithT(t)
	// The in-process registry still accepts schema 1, as old registries do; distribution v3
	// does not.
	source := mirrortest.NewRegistry()
	srv := httptest.NewServer(source)
	t.Cleanup(srv.Close)
	srcRef, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/legacy/app:1")
	g.Expect(err).NotTo(HaveOccurred())
	pushSchema1(t, srcRef, types.DockerManifestSchema1Signed, schema1Layers(t))
	dst := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "backup"})
	m, err := mirror.New()
	g.Expect(err).NotTo(HaveOccurred())

	_, err = m.Copy(ctxT(t), srcRef, distRef(t, dst, "backup/legacy/app:1"))

	g.Expect(errors.Is(err, mirror.ErrSchema1)).To(BeTrue(), "%v", err)
	t.Logf("error: %v", err)
	var s1 *mirror.Schema1Error
	g.Expect(errors.As(err, &s1)).To(BeTrue())
	g.Expect(s1.Target).To(Equal(dst.Host))
	g.Expect(s1.Reason).To(ContainSubstring("MANIFEST_INVALID"))
	g.Expect(mirror.Classify(err)).To(Equal(mirror.KindSchema1))
}

func TestIntegration_findsBackupDeletedFromDistribution(t *testing.T) {
	skipIfShort(t)
	g := NewWithT(t)
	src := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "source"})
	dst := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "backup"})
	srcRef := distRef(t, src, "library/app:1.0")
	img := randomImage(t, 2)
	g.Expect(remote.Write(srcRef, img)).To(Succeed())
	digest, err := img.Digest()
	g.Expect(err).NotTo(HaveOccurred())
	dstRef := distRef(t, dst, "backup/app:1.0")
	clock := &fakeClock{now: time.Now()}
	m, err := mirror.New(mirror.WithClock(clock), mirror.WithCacheTTL(time.Minute))
	g.Expect(err).NotTo(HaveOccurred())
	_, err = m.Copy(ctxT(t), srcRef, dstRef)
	g.Expect(err).NotTo(HaveOccurred())

	// Distribution deletes manifests by digest, which removes every tag pointing at it.
	g.Expect(remote.Delete(dstRef.Context().Digest(digest.String()))).To(Succeed())
	clock.Advance(2 * time.Minute)
	present, err := m.Present(ctxT(t), dstRef, digest)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(present).To(BeFalse())

	res, err := m.Copy(ctxT(t), srcRef, dstRef)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.AlreadyPresent).To(BeFalse())
	d, err := remote.Head(dstRef)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(d.Digest).To(Equal(digest))
}

func TestIntegration_recoversFromFaultsInFrontOfDistribution(t *testing.T) {
	skipIfShort(t)
	g := NewWithT(t)
	src := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "source"})
	dst := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "backup", Auth: true})
	proxy, err := mirrortest.NewFaultProxyTo(dst.URL)
	g.Expect(err).NotTo(HaveOccurred())
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	proxy.Add(mirrortest.Fault{Method: http.MethodPatch, Kind: mirrortest.KindUpload, Status: http.StatusServiceUnavailable, Times: 1})
	proxy.Add(mirrortest.Fault{Method: http.MethodPut, Kind: mirrortest.KindUpload, Reset: true, Times: 1})
	proxy.Add(mirrortest.Fault{Method: http.MethodPut, Kind: mirrortest.KindManifest, Status: http.StatusBadGateway, Times: 1})
	proxy.Add(mirrortest.Fault{Method: http.MethodHead, Kind: mirrortest.KindBlob, Status: http.StatusTooManyRequests,
		Header: http.Header{"Retry-After": {"0"}}, Times: 1})
	srcRef := distRef(t, src, "library/app:1.0")
	img := randomImage(t, 3)
	g.Expect(remote.Write(srcRef, img)).To(Succeed())
	digest, err := img.Digest()
	g.Expect(err).NotTo(HaveOccurred())
	dstRef, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/backup/app:1.0")
	g.Expect(err).NotTo(HaveOccurred())
	// The proxy's address is another host than the registry's: give it the credentials.
	m, err := mirror.New(mirror.WithTargetKeychain(basicKeychain(dst.Username, dst.Password)),
		mirror.WithRetry(4, 10*time.Millisecond, 100*time.Millisecond))
	g.Expect(err).NotTo(HaveOccurred())

	res, err := m.Copy(ctxT(t), srcRef, dstRef)

	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Digest).To(Equal(digest))
	g.Expect(proxy.Injected()).To(Equal(4))
	d, err := remote.Head(distRef(t, dst, "backup/app:1.0"), remote.WithAuth(&authn.Basic{Username: dst.Username, Password: dst.Password}))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(d.Digest).To(Equal(digest))
}

// A moved tag leaves the old digest untagged, and registries delete untagged manifests. The
// digest tag keeps every digest the Mirror copied through the real registry's garbage
// collector; without it (the control) the old digest is gone, which is what pinned workloads
// would have pulled.
func TestIntegration_digestTagsKeepMovedTagsThroughGarbageCollection(t *testing.T) {
	skipIfShort(t)
	for _, tc := range []struct {
		name       string
		digestTags bool
	}{
		{"with digest tags", true},
		{"without digest tags (control)", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			src := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "source"})
			dst := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "backup"})
			srcRef := distRef(t, src, "library/app:stable")
			dstRef := distRef(t, dst, "backup/app:stable")
			first, second := randomImage(t, 2), randomImage(t, 2)
			firstDigest, err := first.Digest()
			g.Expect(err).NotTo(HaveOccurred())
			secondDigest, err := second.Digest()
			g.Expect(err).NotTo(HaveOccurred())
			m, err := mirror.New(mirror.WithDigestTags(tc.digestTags))
			g.Expect(err).NotTo(HaveOccurred())

			g.Expect(remote.Write(srcRef, first)).To(Succeed())
			_, err = m.Copy(ctxT(t), srcRef, dstRef)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(remote.Write(srcRef, second)).To(Succeed()) // the tag moves upstream
			m.Forget(dstRef)
			res, err := m.Copy(ctxT(t), srcRef, dstRef)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Digest).To(Equal(secondDigest))

			out, err := dst.GarbageCollect(true)
			g.Expect(err).NotTo(HaveOccurred())
			t.Logf("garbage-collect: %s", lastLine(out))

			pinned := dstRef.Context().Digest(firstDigest.String())
			current := dstRef.Context().Digest(secondDigest.String())
			g.Expect(remote.Head(current)).Error().NotTo(HaveOccurred(), "the tagged digest is never collected")
			if !tc.digestTags {
				_, err := remote.Head(pinned)
				g.Expect(err).To(HaveOccurred(), "without a digest tag the collector deletes the old digest")
				return
			}
			img, err := remote.Image(pinned)
			g.Expect(err).NotTo(HaveOccurred(), "the old digest must survive garbage collection")
			layers, err := img.Layers()
			g.Expect(err).NotTo(HaveOccurred())
			for _, l := range layers {
				rc, err := l.Compressed()
				g.Expect(err).NotTo(HaveOccurred(), "every blob of the old digest must survive")
				g.Expect(rc.Close()).To(Succeed())
			}
			tag, err := remote.Head(dstRef.Context().Tag(mirror.DigestTag(firstDigest)))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(tag.Digest).To(Equal(firstDigest))
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
