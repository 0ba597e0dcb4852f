package mirror_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	. "github.com/onsi/gomega"

	"github.com/image-cloner/image-cloner/pkg/mirror"
	"github.com/image-cloner/image-cloner/pkg/mirror/mirrortest"
)

// rawManifest is a manifest given as bytes, for remote.Put.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// pushSchema1 writes a schema 1 manifest naming layers (in fsLayers order, top layer first)
// and the layers' blobs, and returns the manifest's bytes. A signed manifest gets a JWS
// "signatures" member as docker 1.x wrote them; the registry used here does not check it.
func pushSchema1(t *testing.T, ref name.Reference, mt types.MediaType, layers []v1.Layer) []byte {
	t.Helper()
	type fsLayer struct {
		BlobSum string `json:"blobSum"`
	}
	type history struct {
		V1Compatibility string `json:"v1Compatibility"`
	}
	m := struct {
		SchemaVersion int              `json:"schemaVersion"`
		Name          string           `json:"name"`
		Tag           string           `json:"tag"`
		Architecture  string           `json:"architecture"`
		FSLayers      []fsLayer        `json:"fsLayers"`
		History       []history        `json:"history"`
		Signatures    []map[string]any `json:"signatures,omitempty"`
	}{SchemaVersion: 1, Name: ref.Context().RepositoryStr(), Tag: ref.Identifier(), Architecture: "amd64"}
	for i, l := range layers {
		if err := remote.WriteLayer(ref.Context(), l); err != nil {
			t.Fatal(err)
		}
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		m.FSLayers = append(m.FSLayers, fsLayer{BlobSum: d.String()})
		m.History = append(m.History, history{V1Compatibility: `{"id":"` + d.Hex + `","created":"2016-01-0` + string(rune('1'+i)) + `T00:00:00Z"}`})
	}
	if mt == types.DockerManifestSchema1Signed {
		m.Signatures = []map[string]any{{
			"header":    map[string]any{"alg": "ES256", "jwk": map[string]string{"kty": "EC", "crv": "P-256", "x": "AA", "y": "BB"}},
			"signature": "c2lnbmF0dXJl",
			"protected": "eyJmb3JtYXRMZW5ndGgiOjEsImZvcm1hdFRhaWwiOiJDbjAiLCJ0aW1lIjoiMjAxNi0wMS0wMVQwMDowMDowMFoifQ",
		}}
	}
	raw, err := json.MarshalIndent(m, "", "   ")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(ref, rawManifest{raw: raw, mt: mt}); err != nil {
		t.Fatalf("pushing schema 1 manifest: %v", err)
	}
	return raw
}

func schema1Layers(t *testing.T) []v1.Layer {
	t.Helper()
	var ls []v1.Layer
	for range 2 {
		l, err := random.Layer(2048, types.DockerLayer)
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	// Schema 1 images repeat the empty layer; it must be copied once.
	return append(ls, ls[0])
}

func TestCopy_copiesSchema1ByteForByte(t *testing.T) {
	for _, mt := range []types.MediaType{types.DockerManifestSchema1, types.DockerManifestSchema1Signed} {
		t.Run(string(mt), func(t *testing.T) {
			g := NewWithT(t)
			e := newEnv(t)
			src := e.src.ref(t, "legacy/app:1")
			layers := schema1Layers(t)
			raw := pushSchema1(t, src, mt, layers)
			e.src.proxy.ResetCounts()
			dst := e.dst.ref(t, "backup/app:1")

			res, err := e.mirror().Copy(ctxT(t), src, dst)

			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.MediaType).To(Equal(mt))
			g.Expect(res.BlobsUploaded).To(Equal(2))
			got, err := remote.Get(dst)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(string(got.Manifest)).To(Equal(string(raw)))
			g.Expect(got.MediaType).To(Equal(mt))
			g.Expect(got.Digest).To(Equal(res.Digest))
			for _, l := range layers {
				d, _ := l.Digest()
				g.Expect(e.dst.reg.HasBlob("backup/app", d)).To(BeTrue())
			}
		})
	}
}

func TestCopy_reportsSchema1RefusedByTheBackupRegistry(t *testing.T) {
	g := NewWithT(t)
	e := newEnv(t)
	src := e.src.ref(t, "legacy/app:1")
	pushSchema1(t, src, types.DockerManifestSchema1, schema1Layers(t))
	// What distribution v3 answers (checked against registry v3.1.2).
	e.dst.proxy.Add(mirrortest.Fault{Method: http.MethodPut, Kind: mirrortest.KindManifest, ContentType: string(types.DockerManifestSchema1),
		Status: http.StatusBadRequest,
		Body:   `{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":"unsupported manifest media type and no default available: application/vnd.docker.distribution.manifest.v1+json"}]}`})
	dst := e.dst.ref(t, "backup/app:1")

	_, err := e.mirror().Copy(ctxT(t), src, dst)

	g.Expect(errors.Is(err, mirror.ErrSchema1)).To(BeTrue(), "%v", err)
	var s1 *mirror.Schema1Error
	g.Expect(errors.As(err, &s1)).To(BeTrue())
	g.Expect(s1.Destination).To(Equal(e.dst.host))
	g.Expect(s1.Source).To(ContainSubstring("legacy/app"))
	g.Expect(s1.Reason).To(ContainSubstring("unsupported manifest media type"))
	g.Expect(mirror.Classify(err)).To(Equal(mirror.KindSchema1))
	g.Expect(err.Error()).To(ContainSubstring("ask the image's publisher for a schema 2/OCI image or pin a newer tag"))
	_, err = remote.Head(dst)
	g.Expect(err).To(HaveOccurred(), "nothing was tagged")
}
