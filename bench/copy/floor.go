package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// floorName is the bare HTTP copy the engine is measured against.
const floorName = "floor"

// floor is the least any copy of the fleet must do: every unique blob moved once, a GET from
// the source streamed into one monolithic PUT to the backup, by a bare http.Client, with as
// many blobs in flight as image-cloner has (concurrency images times blobJobs blobs). It
// reads no manifest, writes no manifest and mounts nothing, so it is not a mirror: its
// copies are not pullable. Its warm run HEADs each blob in the backup and moves none.
type floor struct {
	blobs  []floorBlob
	client *http.Client
}

// floorBlob is one unique blob and the source repository it is read from.
type floorBlob struct {
	repo   string // source repository, e.g. "bench/app-03"
	digest v1.Hash
	size   int64
}

// newFloor lists the fleet's unique blobs with the repository of the first image that has
// each, reading the manifests once here, outside the timed copies.
func newFloor(ctx context.Context, f *fleet, upstreamHost string) (*floor, error) {
	seen := map[v1.Hash]bool{}
	fl := &floor{client: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}}
	add := func(repo string, m *v1.Manifest) {
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				fl.blobs = append(fl.blobs, floorBlob{repo: repo, digest: d.Digest, size: d.Size})
			}
		}
	}
	for _, img := range f.Images {
		repo, err := name.NewRepository(upstreamHost + "/" + img.Repo)
		if err != nil {
			return nil, err
		}
		digests := []v1.Hash{img.Digest}
		if img.Index {
			digests = img.Children
		}
		for _, d := range digests {
			i, err := remote.Image(repo.Digest(d.String()), remote.WithContext(ctx))
			if err != nil {
				return nil, fmt.Errorf("floor: reading %s@%s: %w", repo, d, err)
			}
			m, err := i.Manifest()
			if err != nil {
				return nil, fmt.Errorf("floor: reading %s@%s: %w", repo, d, err)
			}
			add(img.Repo, m)
		}
	}
	if len(fl.blobs) != len(f.Blobs) {
		return nil, fmt.Errorf("floor: found %d unique blobs in the manifests, the fleet has %d", len(fl.blobs), len(f.Blobs))
	}
	return fl, nil
}

func (t *floor) Name() string    { return floorName }
func (t *floor) Version() string { return "net/http, blobs only (this tree)" }

// Copy moves every blob into the backup repository of its source repository's first image,
// concurrency*blobJobs at a time.
func (t *floor) Copy(ctx context.Context, phase string, pairs []pair) error {
	dstRepo := map[string]name.Repository{}
	for _, p := range pairs {
		dst, err := name.ParseReference(p.dst)
		if err != nil {
			return err
		}
		src, err := name.ParseReference(p.src)
		if err != nil {
			return err
		}
		if _, ok := dstRepo[src.Context().RepositoryStr()]; !ok {
			dstRepo[src.Context().RepositoryStr()] = dst.Context()
		}
	}
	srcHost := ""
	if len(pairs) > 0 {
		src, err := name.ParseReference(pairs[0].src)
		if err != nil {
			return err
		}
		srcHost = src.Context().RegistryStr()
	}
	for _, b := range t.blobs {
		if _, ok := dstRepo[b.repo]; !ok {
			return fmt.Errorf("floor: no backup repository for %s", b.repo)
		}
	}
	return poolN(ctx, t.blobs, concurrency*blobJobs, func(ctx context.Context, b floorBlob) error {
		dst := dstRepo[b.repo]
		repo := "http://" + dst.RegistryStr() + "/v2/" + dst.RepositoryStr()
		if phase == "warm" {
			return t.head(ctx, repo+"/blobs/"+b.digest.String())
		}
		return t.move(ctx, "http://"+srcHost+"/v2/"+b.repo+"/blobs/"+b.digest.String(), repo, b)
	})
}

// move streams one blob from src (a blob URL) into repo (a repository URL): POST an upload,
// PUT the body to its location with the digest.
func (t *floor) move(ctx context.Context, src, repo string, b floorBlob) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, repo+"/blobs/uploads/", nil)
	if err != nil {
		return err
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return fmt.Errorf("floor: starting an upload: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("floor: starting an upload: %s", resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return fmt.Errorf("floor: upload location: %w", err)
	}
	base, _ := url.Parse(repo)
	loc = base.ResolveReference(loc)
	q := loc.Query()
	q.Set("digest", b.digest.String())
	loc.RawQuery = q.Encode()

	get, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return err
	}
	body, err := t.client.Do(get)
	if err != nil {
		return fmt.Errorf("floor: GET %s: %w", b.digest, err)
	}
	defer body.Body.Close()
	if body.StatusCode != http.StatusOK {
		return fmt.Errorf("floor: GET %s: %s", b.digest, body.Status)
	}
	put, err := http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), body.Body)
	if err != nil {
		return err
	}
	put.ContentLength = b.size
	put.Header.Set("Content-Type", "application/octet-stream")
	resp, err = t.client.Do(put)
	if err != nil {
		return fmt.Errorf("floor: PUT %s: %w", b.digest, err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("floor: PUT %s: %s %s", b.digest, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

func (t *floor) head(ctx context.Context, blobURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, blobURL, nil)
	if err != nil {
		return err
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return fmt.Errorf("floor: HEAD: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("floor: HEAD %s: %s", blobURL, resp.Status)
	}
	return nil
}
