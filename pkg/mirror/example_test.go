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
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/image-cloner/image-cloner/pkg/mirror"
)

// Copy backs an image up once; asking again is answered from memory.
func ExampleMirror_Copy() {
	ctx := context.Background()
	src := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer src.Close()
	dst := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer dst.Close()
	host := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

	img, _ := random.Image(1024, 2)
	from, _ := name.ParseReference(host(src) + "/library/app:1.0")
	_ = remote.Write(from, img)
	to, _ := name.ParseReference(host(dst) + "/backups/app:1.0")

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
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")

	m, _ := mirror.New(mirror.WithRetry(1, 0, 0))
	from, _ := name.ParseReference(host + "/library/missing:1")
	to, _ := name.ParseReference(host + "/backups/missing:1")
	_, err := m.Copy(ctx, from, to)
	fmt.Println(mirror.Classify(err), "on the", mirror.SideOf(err), "side")
	// Output:
	// NotFound on the Source side
}
