package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The fleet's shape. Sizes are in MiB and scaled by -scale; the seed makes every run generate
// the same bytes, so the same digests.
const (
	fleetSeed   = 20260403
	fleetImages = 20
	// Every multiArchEvery-th image is a manifest list of linux/amd64 and linux/arm64.
	multiArchEvery = 5
)

// Base images shared by the applications: three for amd64, one for arm64 that every arm64
// child of a multi-arch image starts from.
var baseMiB = []struct {
	name string
	arch string
	mib  int
}{
	{"base-debian", "amd64", 45},
	{"base-alpine", "amd64", 30},
	{"base-distroless", "amd64", 35},
	{"base-debian-arm64", "arm64", 30},
}

// fleet is the generated set of images, pushed to the upstream registry.
type fleet struct {
	// Images are the tags to mirror, in order, with their digests (an index's for multi-arch).
	Images []fleetImage
	// Blobs maps every blob digest (layers and configs) to its size.
	Blobs map[v1.Hash]int64
	// Bases holds the base layers' digests, for the report.
	Bases []v1.Hash
	// Signatures are the cosign tags next to the images (sha256-<hex>.sig for every image and
	// every image of an index, .att for every index) with their digests; SignatureBlobs the
	// sizes of their blobs, apart from Blobs so that image bytes stay comparable with tools
	// that copy no signature.
	Signatures     []signatureTag
	SignatureBlobs map[v1.Hash]int64
}

type signatureTag struct {
	Repo, Tag string
	Digest    v1.Hash
}

type fleetImage struct {
	Repo     string // e.g. "bench/app-03"
	Tag      string
	Digest   v1.Hash
	Index    bool
	Children []v1.Hash // an index's manifests
}

func (f *fleet) uniqueBlobBytes() int64 {
	var n int64
	for _, s := range f.Blobs {
		n += s
	}
	return n
}

// blobLayer is a gzip-compressed tar layer held in memory, with its digests precomputed.
type blobLayer struct {
	data   []byte
	digest v1.Hash
	diffID v1.Hash
}

func (l *blobLayer) Digest() (v1.Hash, error) { return l.digest, nil }
func (l *blobLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }
func (l *blobLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.data)), nil
}
func (l *blobLayer) Uncompressed() (io.ReadCloser, error) {
	return gzip.NewReader(bytes.NewReader(l.data))
}
func (l *blobLayer) Size() (int64, error)                { return int64(len(l.data)), nil }
func (l *blobLayer) MediaType() (types.MediaType, error) { return types.DockerLayer, nil }

// newLayer makes a real layer: a tar holding one file of size random (incompressible) bytes,
// gzipped without compression (stored blocks) so the blob is as large as its content, like the
// already-compressed binaries that dominate real images.
// The content comes from its own generator, seeded from the fleet's, so that the fleet's shape
// does not depend on the sizes (-scale).
func newLayer(rng *rand.Rand, path string, size int) (*blobLayer, error) {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], rng.Uint64())
	content := make([]byte, size)
	_, _ = rand.NewChaCha8(seed).Read(content)
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	if err := tw.WriteHeader(&tar.Header{Name: path, Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(content); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.NoCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(tarBuf.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return &blobLayer{
		data:   gz.Bytes(),
		digest: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(gz.Bytes()))},
		diffID: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(tarBuf.Bytes()))},
	}, nil
}

func mib(n float64, scale float64) int { return int(n * scale * (1 << 20)) }

// buildImage stacks layers on empty.Image and sets the platform and a command, so that every
// image has its own config blob.
func buildImage(arch, cmd string, layers ...v1.Layer) (v1.Image, error) {
	img := empty.Image
	for _, l := range layers {
		var err error
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Cmd = []string{cmd}
	return mutate.ConfigFile(img, cf)
}

// pushFleet generates the fleet and pushes it to the upstream registry at host. Each base is
// pushed first as an image of its own; the applications then mount its layer from there, as
// they would on a real registry.
func pushFleet(ctx context.Context, host string, scale float64, logf func(string, ...any)) (*fleet, error) {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], fleetSeed)
	rng := rand.New(rand.NewChaCha8(seed))
	f := &fleet{Blobs: map[v1.Hash]int64{}}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithJobs(4)}
	record := func(img v1.Image) error {
		m, err := img.Manifest()
		if err != nil {
			return err
		}
		f.Blobs[m.Config.Digest] = m.Config.Size
		for _, l := range m.Layers {
			f.Blobs[l.Digest] = l.Size
		}
		return nil
	}

	type base struct {
		arch  string
		layer v1.Layer
	}
	var bases []base
	for _, b := range baseMiB {
		l, err := newLayer(rng, "usr/lib/"+b.name+".bin", mib(float64(b.mib), scale))
		if err != nil {
			return nil, err
		}
		img, err := buildImage(b.arch, "/bin/sh", l)
		if err != nil {
			return nil, err
		}
		ref, err := name.ParseReference(fmt.Sprintf("%s/bench/%s:1.0", host, b.name))
		if err != nil {
			return nil, err
		}
		if err := remote.Write(ref, img, opts...); err != nil {
			return nil, fmt.Errorf("pushing %s: %w", ref, err)
		}
		f.Bases = append(f.Bases, l.digest)
		bases = append(bases, base{arch: b.arch, layer: &remote.MountableLayer{Layer: l, Reference: ref}})
	}
	amd64Bases := bases[:3]
	arm64Base := bases[3]

	// appLayers draws 1-3 unique layers of 1-5 MiB for one image of one application.
	appLayers := func(app string, arch string) ([]v1.Layer, error) {
		n := 1 + rng.IntN(3)
		var ls []v1.Layer
		for i := range n {
			size := 1 + rng.Float64()*4
			l, err := newLayer(rng, fmt.Sprintf("opt/%s/%s/layer-%d.bin", app, arch, i), mib(size, scale))
			if err != nil {
				return nil, err
			}
			ls = append(ls, l)
		}
		return ls, nil
	}

	type push struct {
		ref  name.Reference
		img  v1.Image
		idx  v1.ImageIndex
		item fleetImage
	}
	var pushes []push
	for i := 1; i <= fleetImages; i++ {
		app := fmt.Sprintf("app-%02d", i)
		base := amd64Bases[rng.IntN(len(amd64Bases))]
		own, err := appLayers(app, "amd64")
		if err != nil {
			return nil, err
		}
		amd, err := buildImage("amd64", "/usr/bin/"+app, append([]v1.Layer{base.layer}, own...)...)
		if err != nil {
			return nil, err
		}
		if err := record(amd); err != nil {
			return nil, err
		}
		ref, err := name.ParseReference(fmt.Sprintf("%s/bench/%s:1.0", host, app))
		if err != nil {
			return nil, err
		}
		item := fleetImage{Repo: "bench/" + app, Tag: "1.0"}
		if i%multiArchEvery != 0 {
			if item.Digest, err = amd.Digest(); err != nil {
				return nil, err
			}
			pushes = append(pushes, push{ref: ref, img: amd, item: item})
			continue
		}
		own, err = appLayers(app, "arm64")
		if err != nil {
			return nil, err
		}
		arm, err := buildImage("arm64", "/usr/bin/"+app, append([]v1.Layer{arm64Base.layer}, own...)...)
		if err != nil {
			return nil, err
		}
		if err := record(arm); err != nil {
			return nil, err
		}
		idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index,
			mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
			mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
		), types.DockerManifestList)
		item.Index = true
		if item.Digest, err = idx.Digest(); err != nil {
			return nil, err
		}
		for _, im := range []v1.Image{amd, arm} {
			d, err := im.Digest()
			if err != nil {
				return nil, err
			}
			item.Children = append(item.Children, d)
		}
		pushes = append(pushes, push{ref: ref, idx: idx, item: item})
	}

	var wg sync.WaitGroup
	errs := make([]error, len(pushes))
	sem := make(chan struct{}, 4)
	for i, p := range pushes {
		f.Images = append(f.Images, p.item)
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if p.idx != nil {
				errs[i] = remote.WriteIndex(p.ref, p.idx, opts...)
			} else {
				errs[i] = remote.Write(p.ref, p.img, opts...)
			}
			if errs[i] != nil {
				errs[i] = fmt.Errorf("pushing %s: %w", p.ref, errs[i])
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	if err := signFleet(ctx, host, f, opts); err != nil {
		return nil, err
	}
	logf("fleet: %d images (%d multi-arch), %d distinct blobs, %.1f MiB of unique blob bytes, %d cosign signatures and attestations, pushed to %s",
		len(f.Images), fleetImages/multiArchEvery, len(f.Blobs), float64(f.uniqueBlobBytes())/(1<<20), len(f.Signatures), host)
	return f, nil
}

// signFleet signs every image as `cosign sign --recursive` does (a signature manifest under
// sha256-<hex>.sig for an image, an index and each image of an index: a simple-signing payload
// and its ECDSA P-256 signature), and attests every index as `cosign attest` does (a DSSE
// envelope of an in-toto statement, 4 KiB, under sha256-<hex>.att). The upstream distribution
// registry has no referrers API, so cosign's tags are what it would hold.
func signFleet(ctx context.Context, host string, f *fleet, opts []remote.Option) error {
	f.SignatureBlobs = map[v1.Hash]int64{}
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		return err
	}
	push := func(repo string, subject v1.Hash, suffix string, layer []byte, mt types.MediaType, ann map[string]string) error {
		img, err := mutate.Append(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON),
			mutate.Addendum{Layer: static.NewLayer(layer, mt), Annotations: ann})
		if err != nil {
			return err
		}
		tag := subject.Algorithm + "-" + subject.Hex + "." + suffix
		ref, err := name.ParseReference(fmt.Sprintf("%s/%s:%s", host, repo, tag))
		if err != nil {
			return err
		}
		if err := remote.Write(ref, img, opts...); err != nil {
			return fmt.Errorf("pushing %s: %w", ref, err)
		}
		d, err := img.Digest()
		if err != nil {
			return err
		}
		m, err := img.Manifest()
		if err != nil {
			return err
		}
		f.SignatureBlobs[m.Config.Digest] = m.Config.Size
		for _, l := range m.Layers {
			f.SignatureBlobs[l.Digest] = l.Size
		}
		f.Signatures = append(f.Signatures, signatureTag{Repo: repo, Tag: tag, Digest: d})
		return nil
	}
	sign := func(repo string, d v1.Hash) error {
		payload, err := json.Marshal(map[string]any{"critical": map[string]any{
			"identity": map[string]string{"docker-reference": host + "/" + repo},
			"image":    map[string]string{"docker-manifest-digest": d.String()},
			"type":     "cosign container image signature"}, "optional": nil})
		if err != nil {
			return err
		}
		sum := sha256.Sum256(payload)
		sig, err := ecdsa.SignASN1(crand.Reader, key, sum[:])
		if err != nil {
			return err
		}
		return push(repo, d, "sig", payload, "application/vnd.dev.cosign.simplesigning.v1+json",
			map[string]string{"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString(sig)})
	}
	for _, img := range f.Images {
		for _, d := range append([]v1.Hash{img.Digest}, img.Children...) {
			if err := sign(img.Repo, d); err != nil {
				return err
			}
		}
		if img.Index {
			statement := `{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://slsa.dev/provenance/v1","predicate":"` + strings.Repeat("x", 3000) + `"}`
			envelope, err := json.Marshal(map[string]any{"payloadType": "application/vnd.in-toto+json",
				"payload": base64.StdEncoding.EncodeToString([]byte(statement)), "signatures": []map[string]string{{"sig": "MEUC"}}})
			if err != nil {
				return err
			}
			if err := push(img.Repo, img.Digest, "att", envelope, "application/vnd.dsse.envelope.v1+json", nil); err != nil {
				return err
			}
		}
	}
	return nil
}
