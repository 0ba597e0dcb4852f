package mirror_test

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"

	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/mirror"
)

// TestMirror_untrustedCASaysWhatToTrust: against registries serving TLS with a private CA the
// Mirror does not trust, Resolve (source) and Copy (backup) fail naming the registry and saying
// to trust its CA, even though go-containerregistry also tries plain HTTP on loopback
// registries and gets a 400 there, which alone would read as an invalid request.
func TestMirror_untrustedCASaysWhatToTrust(t *testing.T) {
	g := NewWithT(t)
	up := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "upstream-private-ca", TLS: true})
	bk := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "backup-private-ca", TLS: true})
	img, err := random.Image(128, 1)
	g.Expect(err).NotTo(HaveOccurred())
	src, err := name.ParseReference(up.Host + "/private/app:v1")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(remote.Write(src, img, remote.WithTransport(up.Transport()), remote.WithContext(t.Context()))).To(Succeed())
	dst, err := name.ParseReference(bk.Host + "/backup/app:v1")
	g.Expect(err).NotTo(HaveOccurred())

	trustsNone, err := mirror.New()
	g.Expect(err).NotTo(HaveOccurred())
	_, err = trustsNone.Resolve(t.Context(), src)
	g.Expect(err).To(MatchError(And(ContainSubstring("certificate signed by unknown authority"),
		ContainSubstring(up.Host+" serves a certificate signed by an authority this process does not trust"))))

	trustsUpstream, err := mirror.New(mirror.WithTransport(up.Transport()))
	g.Expect(err).NotTo(HaveOccurred())
	_, err = trustsUpstream.Copy(t.Context(), src, dst)
	g.Expect(err).To(MatchError(ContainSubstring(bk.Host + " serves a certificate signed by an authority this process does not trust")))
}
