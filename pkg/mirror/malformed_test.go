package mirror_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	. "github.com/onsi/gomega"

	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/mirror"
	"github.com/image-cloner/image-cloner/pkg/mirror/mirrortest"
)

// servedManifest is a manifest a source registry answers with, whatever it holds.
type servedManifest struct {
	mediaType string
	size      int64
	// body writes size bytes.
	body func(io.Writer) error
}

// malformedRegistry serves the manifests in served (by digest) and forwards the rest to a
// real in-process registry.
type malformedRegistry struct {
	next   http.Handler
	served map[string]servedManifest
}

func (m *malformedRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if mirrortest.KindOf(r.URL.Path) == mirrortest.KindManifest {
		ref := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		if s, ok := m.served[ref]; ok {
			w.Header().Set("Content-Type", s.mediaType)
			w.Header().Set("Content-Length", strconv.FormatInt(s.size, 10))
			w.Header().Set("Docker-Content-Digest", ref)
			if r.Method == http.MethodHead {
				return
			}
			_ = s.body(w)
			return
		}
	}
	m.next.ServeHTTP(w, r)
}

func bytesManifest(mt string, body string) servedManifest {
	return servedManifest{mediaType: mt, size: int64(len(body)), body: func(w io.Writer) error {
		_, err := io.WriteString(w, body)
		return err
	}}
}

func digestOf(body string) string {
	sum := sha256.Sum256([]byte(body))
	return "sha256:" + hex.EncodeToString(sum[:])
}

const missingDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000001"

// TestCopy_malformedManifestsAreClearErrors serves manifests a broken or hostile registry
// could send. Each copy fails with an error that names the image and says what is wrong,
// tags nothing in the backup registry, and the same Mirror keeps copying good images.
func TestCopy_malformedManifestsAreClearErrors(t *testing.T) {
	e := newEnv(t)
	mal := &malformedRegistry{next: mirrortest.NewRegistry(), served: map[string]servedManifest{}}
	srv := httptest.NewServer(mal)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	m := e.mirror()

	const oci, ociIndex = string(types.OCIManifestSchema1), string(types.OCIImageIndex)
	huge := int64(100<<20) + 1 // one byte over go-containerregistry's manifest limit
	malformed := "sent a manifest or image config for " + host + "/malformed/app@sha256:"
	for _, tc := range []struct {
		name string
		// manifest is served at its own digest, unless digest is set.
		manifest   servedManifest
		digest     string
		kind       mirror.Kind
		says       []string
		doesNotSay []string
	}{
		{name: "invalid JSON", manifest: bytesManifest(oci, `{"schemaVersion":2,,"config":{}}`), kind: mirror.KindInvalid,
			says: []string{"invalid character", malformed}},
		// go-containerregistry's json.Decoder reports a truncated document as a bare
		// io.ErrUnexpectedEOF, like a body cut by the network; Copy checks the manifest itself.
		{name: "truncated JSON", manifest: bytesManifest(oci, `{"schemaVersion":2,"config":`), kind: mirror.KindInvalid,
			says: []string{"unexpected end of JSON input", malformed}, doesNotSay: []string{"check network access"}},
		{name: "not an object", manifest: bytesManifest(oci, `["x"]`), kind: mirror.KindInvalid,
			says: []string{"cannot unmarshal array", malformed}},
		{name: "empty", manifest: bytesManifest(oci, ``), kind: mirror.KindInvalid,
			says: []string{"unexpected end of JSON input", malformed}, doesNotSay: []string{"check network access"}},
		{name: "unknown media type", manifest: bytesManifest("application/vnd.example.thing+json", `{}`), kind: mirror.KindInvalid,
			says: []string{`manifest media type "application/vnd.example.thing+json" is not an image, an index or schema 1: it cannot be copied`}},
		{name: "index pointing to a missing child", kind: mirror.KindNotFound,
			manifest: bytesManifest(ociIndex, `{"schemaVersion":2,"mediaType":"`+ociIndex+`","manifests":[{"mediaType":"`+oci+`","digest":"`+missingDigest+`","size":100}]}`),
			says:     []string{"does not exist upstream"}},
		{name: "image pointing to a missing config", kind: mirror.KindNotFound,
			manifest: bytesManifest(oci, `{"schemaVersion":2,"mediaType":"`+oci+`","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"`+missingDigest+`","size":2},"layers":[]}`),
			says:     []string{"does not exist upstream"}},
		{name: "digest mismatch", manifest: bytesManifest(oci, `{"schemaVersion":2}`), digest: missingDigest, kind: mirror.KindOther,
			says: []string{"does not match requested digest"}},
		{name: "schema 1 with broken layers", manifest: bytesManifest(string(types.DockerManifestSchema1), `{"schemaVersion":1,"fsLayers":"x"}`), kind: mirror.KindInvalid,
			says: []string{"fsLayers", malformed}},
		{name: "larger than any manifest", kind: mirror.KindOther, digest: "sha256:" + strings.Repeat("ab", 32),
			manifest: servedManifest{mediaType: oci, size: huge, body: func(w io.Writer) error {
				chunk := make([]byte, 1<<20)
				for sent := int64(0); sent < huge; sent += int64(len(chunk)) {
					if _, err := w.Write(chunk[:min(int64(len(chunk)), huge-sent)]); err != nil {
						return err
					}
				}
				return nil
			}},
			says: []string{"exceeds 104857600 byte limit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			d := tc.digest
			if d == "" {
				var body strings.Builder
				g.Expect(tc.manifest.body(&body)).To(Succeed())
				d = digestOf(body.String())
			}
			mal.served[d] = tc.manifest
			src, err := name.NewDigest(host + "/malformed/app@" + d)
			g.Expect(err).NotTo(HaveOccurred())
			dst := e.dst.ref(t, "backup/"+strings.ReplaceAll(strings.ToLower(tc.name), " ", "-")+":1")

			start := time.Now()
			_, err = m.Copy(ctxT(t), src, dst)
			if tc.manifest.size == huge {
				testenv.Report(t, "mirror: refusing a %d-byte manifest took %s", huge, time.Since(start).Round(time.Millisecond))
			}

			g.Expect(err).To(HaveOccurred())
			msg := err.Error()
			t.Logf("%s: %s (%s)", tc.name, msg, mirror.Classify(err))
			g.Expect(msg).To(HavePrefix("copying " + src.String() + " to " + dst.String() + ": "))
			for _, w := range tc.says {
				g.Expect(msg).To(ContainSubstring(w))
			}
			for _, w := range tc.doesNotSay {
				g.Expect(msg).NotTo(ContainSubstring(w))
			}
			g.Expect(mirror.Classify(err)).To(Equal(tc.kind))
			g.Expect(len(msg)).To(BeNumerically("<", 1024))
			_, err = remote.Head(dst)
			g.Expect(err).To(HaveOccurred(), "nothing was tagged in the backup registry")
		})
	}

	// The same Mirror, after all that, still copies a good image.
	src, _ := e.push("good/app:1", randomImage(t, 2))
	dst := e.dst.ref(t, "backup/good:1")
	_, err := m.Copy(ctxT(t), src, dst)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	expectBackupEqualsSource(NewWithT(t), src, dst)
}
