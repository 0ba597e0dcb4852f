package mirrortest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"

	"github.com/image-cloner/image-cloner/pkg/mirror/mirrortest"
)

func TestKindOf_sortsRegistryPaths(t *testing.T) {
	for _, tc := range []struct {
		path string
		kind mirrortest.PathKind
		repo string
	}{
		{"/v2/", mirrortest.KindPing, ""},
		{"/v2/library/nginx/manifests/1.25", mirrortest.KindManifest, "library/nginx"},
		{"/v2/a/b/c/blobs/sha256:abc", mirrortest.KindBlob, "a/b/c"},
		{"/v2/a/blobs/uploads/", mirrortest.KindUpload, "a"},
		{"/v2/a/blobs/uploads/123-456", mirrortest.KindUpload, "a"},
		{"/v2/a/tags/list", mirrortest.KindTags, "a"},
		{"/v2/a/referrers/sha256:abc", mirrortest.KindReferrers, "a"},
		{"/v2/_catalog", mirrortest.KindCatalog, ""},
		{"/token", mirrortest.KindOther, ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(mirrortest.KindOf(tc.path)).To(Equal(tc.kind))
			g.Expect(mirrortest.RepositoryOf(tc.path)).To(Equal(tc.repo))
		})
	}
}

func newProxy(t *testing.T) (*mirrortest.FaultProxy, string) {
	t.Helper()
	p := mirrortest.NewFaultProxy(mirrortest.NewRegistry())
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv.URL
}

func TestFaultProxy_injectsFaultsTheGivenNumberOfTimes(t *testing.T) {
	g := NewWithT(t)
	p, url := newProxy(t)
	p.Add(mirrortest.Fault{Method: http.MethodGet, Kind: mirrortest.KindPing, Status: 503, Times: 2,
		Header: http.Header{"Retry-After": {"7"}}, Body: `{"errors":[{"code":"UNAVAILABLE"}]}`})

	var statuses []int
	for range 3 {
		resp, err := http.Get(url + "/v2/")
		g.Expect(err).NotTo(HaveOccurred())
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
		if resp.StatusCode == 503 {
			g.Expect(resp.Header.Get("Retry-After")).To(Equal("7"))
			g.Expect(string(body)).To(ContainSubstring("UNAVAILABLE"))
		}
	}

	g.Expect(statuses).To(Equal([]int{503, 503, 200}))
	g.Expect(p.Injected()).To(Equal(2))
	g.Expect(p.Count(http.MethodGet, mirrortest.KindPing)).To(Equal(3))
	g.Expect(p.Count("", mirrortest.KindAny)).To(Equal(3))
	g.Expect(p.Count(http.MethodHead, mirrortest.KindAny)).To(Equal(0))
	p.ResetCounts()
	g.Expect(p.Count("", mirrortest.KindAny)).To(Equal(0))
	g.Expect(p.Injected()).To(Equal(0))
}

func TestFaultProxy_resetsConnections(t *testing.T) {
	g := NewWithT(t)
	p, url := newProxy(t)
	p.Add(mirrortest.Fault{Kind: mirrortest.KindPing, Reset: true, Times: 1})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

	_, err := client.Get(url + "/v2/")

	g.Expect(err).To(HaveOccurred())
	g.Expect(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || strings.Contains(err.Error(), "EOF")).To(BeTrue(), "%v", err)
	resp, err := client.Get(url + "/v2/")
	g.Expect(err).NotTo(HaveOccurred())
	_ = resp.Body.Close()
}

func TestFaultProxy_cutsBodiesRewritesDigestsAndDelays(t *testing.T) {
	g := NewWithT(t)
	p, url := newProxy(t)
	ref, err := name.ParseReference(strings.TrimPrefix(url, "http://") + "/app:1")
	g.Expect(err).NotTo(HaveOccurred())
	img, err := random.Image(4096, 1)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(remote.Write(ref, img)).To(Succeed())
	layers, err := img.Layers()
	g.Expect(err).NotTo(HaveOccurred())
	layerDigest, err := layers[0].Digest()
	g.Expect(err).NotTo(HaveOccurred())

	t.Run("cut body", func(t *testing.T) {
		g := NewWithT(t)
		p.Add(mirrortest.Fault{Method: http.MethodGet, Kind: mirrortest.KindBlob, CutBody: true, CutAfter: 10, Times: 1})
		resp, err := http.Get(url + "/v2/app/blobs/" + layerDigest.String())
		g.Expect(err).NotTo(HaveOccurred())
		_, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		g.Expect(err).To(HaveOccurred(), "the body ends before its Content-Length")
	})
	t.Run("digest rewrite and extra headers", func(t *testing.T) {
		g := NewWithT(t)
		const fake = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
		p.Add(mirrortest.Fault{Method: http.MethodHead, Kind: mirrortest.KindManifest, Repository: "app", Digest: fake,
			ResponseHeader: http.Header{"Ratelimit-Remaining": {"1;w=60"}}, Times: 1})
		req, _ := http.NewRequest(http.MethodHead, url+"/v2/app/manifests/1", nil)
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(200))
		g.Expect(resp.Header.Get("Docker-Content-Digest")).To(Equal(fake))
		g.Expect(resp.Header.Get("Ratelimit-Remaining")).To(Equal("1;w=60"))
	})
	t.Run("delay ends when the client gives up", func(t *testing.T) {
		g := NewWithT(t)
		p.Add(mirrortest.Fault{Kind: mirrortest.KindTags, Delay: time.Hour, Times: 1})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v2/app/tags/list", nil)
		_, err := http.DefaultClient.Do(req)
		g.Expect(errors.Is(err, context.DeadlineExceeded)).To(BeTrue(), "%v", err)
	})
}

func TestRegistry_keepsBlobsPerRepositoryAndMounts(t *testing.T) {
	g := NewWithT(t)
	reg := mirrortest.NewRegistry()
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	layer, err := random.Layer(1024, "application/vnd.oci.image.layer.v1.tar+gzip")
	g.Expect(err).NotTo(HaveOccurred())
	digest, err := layer.Digest()
	g.Expect(err).NotTo(HaveOccurred())
	one, err := name.NewRepository(host + "/one")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(remote.WriteLayer(one, layer)).To(Succeed())

	g.Expect(reg.HasBlob("one", digest)).To(BeTrue())
	g.Expect(reg.HasBlob("two", digest)).To(BeFalse())
	resp, err := http.Head(srv.URL + "/v2/two/blobs/" + digest.String())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resp.StatusCode).To(Equal(http.StatusNotFound))

	for _, tc := range []struct {
		from string
		want int
	}{
		{"elsewhere", http.StatusAccepted}, // nothing to mount: an upload starts
		{"one", http.StatusCreated},
	} {
		resp, err := http.Post(srv.URL+"/v2/two/blobs/uploads/?mount="+digest.String()+"&from="+tc.from, "", nil)
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(tc.want), "from %s", tc.from)
	}
	g.Expect(reg.HasBlob("two", digest)).To(BeTrue())
}

func TestRecorder_countsRequests(t *testing.T) {
	g := NewWithT(t)
	_, url := newProxy(t)
	rec := &mirrortest.Recorder{}
	client := &http.Client{Transport: rec}
	for _, path := range []string{"/v2/", "/v2/a/manifests/1", "/v2/a/manifests/2"} {
		resp, err := client.Get(url + path)
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
	}
	host := strings.TrimPrefix(url, "http://")
	g.Expect(rec.Count(host, http.MethodGet, mirrortest.KindManifest)).To(Equal(2))
	g.Expect(rec.Count("", "", mirrortest.KindPing)).To(Equal(1))
	g.Expect(rec.Count("other:5000", "", mirrortest.KindAny)).To(Equal(0))
	g.Expect(rec.Requests()[1].Status).To(Equal(http.StatusNotFound))
	rec.Reset()
	g.Expect(rec.Requests()).To(BeEmpty())
}
