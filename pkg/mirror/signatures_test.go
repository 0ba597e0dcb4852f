package mirror_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	. "github.com/onsi/gomega"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/mirror"
)

// These tests sign images in a real distribution registry as cosign does (sigstore's own
// payload and signature code, a local ECDSA key, no transparency log), copy them with the
// Mirror into another, and verify the signatures against the copy the way `cosign verify --key
// --insecure-ignore-tlog` does: the signature over the simple-signing payload, and the payload's
// digest against the copy's.

const (
	simpleSigning       = types.MediaType("application/vnd.dev.cosign.simplesigning.v1+json")
	signatureAnnotation = "dev.cosignproject.cosign/signature"
)

// signer is a cosign-style key pair.
type signer struct {
	sv *signature.ECDSASignerVerifier
}

func newSigner(t *testing.T) *signer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadECDSASignerVerifier(key, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{sv: sv}
}

// signatures is the manifest cosign pushes to sha256-<hex>.sig for image, one layer per
// signature: the simple-signing payload, its signature in an annotation.
func (s *signer) signatures(t *testing.T, image name.Digest) v1.Image {
	t.Helper()
	body, err := payload.Cosign{Image: image}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := s.sv.SignMessage(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.Append(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON),
		mutate.Addendum{
			Layer:       static.NewLayer(body, simpleSigning),
			Annotations: map[string]string{signatureAnnotation: base64.StdEncoding.EncodeToString(sig)},
		})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// verify checks that sigs holds a valid signature by s for the image with digest want.
func (s *signer) verify(sigs v1.Image, want v1.Hash) error {
	m, err := sigs.Manifest()
	if err != nil {
		return err
	}
	layers, err := sigs.Layers()
	if err != nil {
		return err
	}
	var errs []error
	for i, l := range layers {
		d := m.Layers[i]
		if d.MediaType != simpleSigning {
			continue
		}
		rc, err := l.Uncompressed()
		if err != nil {
			return err
		}
		body, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil {
			return err
		}
		sig, err := base64.StdEncoding.DecodeString(d.Annotations[signatureAnnotation])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := s.sv.VerifySignature(bytes.NewReader(sig), bytes.NewReader(body)); err != nil {
			errs = append(errs, fmt.Errorf("signature %d: %w", i, err))
			continue
		}
		var p payload.Cosign
		if err := json.Unmarshal(body, &p); err != nil {
			errs = append(errs, err)
			continue
		}
		if p.Image.DigestStr() != want.String() {
			errs = append(errs, fmt.Errorf("signature %d is for %s, not %s", i, p.Image.DigestStr(), want))
			continue
		}
		return nil
	}
	return fmt.Errorf("no valid signature for %s: %w", want, errors.Join(append(errs, errors.New("none left"))...))
}

// verifyCopy verifies ref in the destination as `cosign verify --key` does: resolve its digest,
// read sha256-<hex>.sig next to it, check a signature.
func (s *signer) verifyCopy(ref name.Reference, opts ...remote.Option) error {
	desc, err := remote.Head(ref, opts...)
	if err != nil {
		return err
	}
	sigs, err := remote.Image(ref.Context().Tag(cosignTag(desc.Digest, "sig")), opts...)
	if err != nil {
		return fmt.Errorf("reading the signatures of %s: %w", ref, err)
	}
	return s.verify(sigs, desc.Digest)
}

func TestSignatures_verifyAgainstTheCopyInDistribution(t *testing.T) {
	skipIfShort(t)
	src := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "source"})
	dst := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "backup", Auth: true})
	auth := remote.WithAuth(&authn.Basic{Username: dst.Username, Password: dst.Password})
	key := newSigner(t)

	for _, tc := range []struct {
		name      string
		referrers bool
		tamper    bool
		wantErr   string
	}{
		{name: "signature copied with the image", referrers: true},
		{name: "without referrers (control)", referrers: false, wantErr: "MANIFEST_UNKNOWN"},
		{name: "signature tampered with in the copy (control)", referrers: true, tamper: true, wantErr: "invalid signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			repo := fmt.Sprintf("library/app-%d", time.Now().UnixNano())
			img := randomImage(t, 2)
			srcRef := distRef(t, src, repo+":1.0")
			g.Expect(remote.Write(srcRef, img)).To(Succeed())
			digest, err := img.Digest()
			g.Expect(err).NotTo(HaveOccurred())
			sigs := key.signatures(t, srcRef.Context().Digest(digest.String()))
			g.Expect(remote.Write(srcRef.Context().Tag(cosignTag(digest, "sig")), sigs)).To(Succeed())
			g.Expect(key.verifyCopy(srcRef)).To(Succeed(), "the source verifies")
			dstRef := distRef(t, dst, "backup/"+repo+":1.0")
			m, err := mirror.New(mirror.WithDestinationKeychain(basicKeychain(dst.Username, dst.Password)), mirror.WithReferrers(tc.referrers))
			g.Expect(err).NotTo(HaveOccurred())

			res, err := m.Copy(ctxT(t), srcRef, dstRef)

			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.Digest).To(Equal(digest))
			if tc.tamper {
				// The signature of another payload, under the same tag in the copy.
				forged := key.signatures(t, dstRef.Context().Digest(digest.String()))
				forged = swapPayload(t, forged, sigs)
				g.Expect(remote.Write(dstRef.Context().Tag(cosignTag(digest, "sig")), forged, auth)).To(Succeed())
			}
			err = key.verifyCopy(dstRef, auth)
			if tc.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(res.Referrers.Found).To(Equal(1))
				return
			}
			g.Expect(err).To(HaveOccurred())
			t.Logf("verification: %v", err)
			g.Expect(err.Error()).To(ContainSubstring(tc.wantErr))
		})
	}
}

// swapPayload returns sigs with the payload of other and the signature annotation of sigs: a
// signature that no longer matches what it signs.
func swapPayload(t *testing.T, sigs, other v1.Image) v1.Image {
	t.Helper()
	m, err := sigs.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	otherLayers, err := other.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := otherLayers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	body = bytes.Replace(body, []byte(`"optional":null`), []byte(`"optional":{"forged":true}`), 1)
	img, err := mutate.Append(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON),
		mutate.Addendum{Layer: static.NewLayer(body, simpleSigning), Annotations: m.Layers[0].Annotations})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Distribution v3.1 has no referrers API (its /v2/<name>/referrers/<digest> answers 404), so an
// OCI 1.1 referrer lives in the referrers tag schema's index, sha256-<hex>, in the source and
// in the copy, beside the copy's digest tag (digest-sha256-<hex>) when digest tags are on.
func TestSignatures_OCIReferrerThroughTheTagSchemaOfDistribution(t *testing.T) {
	skipIfShort(t)
	src := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "source"})
	dst := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "backup"})
	key := newSigner(t)

	for _, tc := range []struct {
		name       string
		digestTags bool
	}{
		{"without digest tags", false},
		{"with digest tags (the default)", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			repo := fmt.Sprintf("library/app-%d", time.Now().UnixNano())
			img := randomImage(t, 2)
			srcRef := distRef(t, src, repo+":1.0")
			g.Expect(remote.Write(srcRef, img)).To(Succeed())
			digest, err := img.Digest()
			g.Expect(err).NotTo(HaveOccurred())
			// A signature as a referrer: the signed payload in an artifact whose subject is
			// the image (what cosign's bundles and Notation signatures are).
			ref := mutate.Subject(key.signatures(t, srcRef.Context().Digest(digest.String())), *descriptorOf(t, img)).(v1.Image)
			refDigest, err := ref.Digest()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(remote.Write(srcRef.Context().Digest(refDigest.String()), ref)).To(Succeed())
			g.Expect(referrersOf(t, srcRef.Context().Digest(digest.String()))).To(ConsistOf(refDigest))
			dstRef := distRef(t, dst, "backup/"+repo+":1.0")
			m, err := mirror.New(mirror.WithDigestTags(tc.digestTags))
			g.Expect(err).NotTo(HaveOccurred())

			res, err := m.Copy(ctxT(t), srcRef, dstRef)

			g.Expect(err).NotTo(HaveOccurred())
			if tc.digestTags {
				g.Expect(head(t, dstRef.Context().Tag(mirror.DigestTag(digest))).Digest).To(Equal(digest))
			}
			g.Expect(res.Referrers).To(Equal(mirror.Referrers{Found: 1, Copied: 1, BytesUploaded: res.Referrers.BytesUploaded}))
			listed := referrersOf(t, dstRef.Context().Digest(digest.String()))
			g.Expect(listed).To(ConsistOf(refDigest))
			fromCopy, err := remote.Image(dstRef.Context().Digest(listed[0].String()))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(key.verify(fromCopy, digest)).To(Succeed())
			g.Expect(key.verify(fromCopy, randomDigest(t))).NotTo(Succeed(), "the check can fail")
		})
	}
}

func randomDigest(t *testing.T) v1.Hash {
	t.Helper()
	d, err := randomImage(t, 1).Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}
