package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/image-cloner/image-cloner/hub/internal/dashboard"
	"github.com/image-cloner/image-cloner/hub/internal/images"
	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/imageref"
	"github.com/image-cloner/image-cloner/pkg/mirror"
)

const chromium = "/usr/bin/chromium"

// TestDashboard_showsTheFleetLiveInABrowser drives a real headless Chromium against the
// dashboard of a hub reconciling two real members: the clusters page lists both registrations;
// the images page shows a failed image with its reason, and an image whose copy the test holds
// back moving to Ready once it is let go, without a reload; the coverage page counts a member's
// running containers by where their image comes from, live, and the overview sums them up; the
// clusters page turns a member Unreachable after its API server stops, and the coverage page
// names it as not counted. The API agrees with the members' own ClonedImages, and
// no page or API response holds a credential. Screenshots go to $ARTIFACTS or
// artifacts/screenshots.
func TestDashboard_showsTheFleetLiveInABrowser(t *testing.T) {
	requireChromium(t)
	g := NewWithT(t)
	gate := newGate("/team/slow/")
	f := startFleet(t, fleetOptions{isolated: true, members: 2, dashboard: true, mirrorOptions: []mirror.Option{mirror.WithTransport(gate)}})
	t.Cleanup(gate.release) // before the hub stops
	ctx := t.Context()
	m1, m2 := f.members[0], f.members[1]
	f.register(m1, registration.Label)
	f.register(m2, registration.ClusterAPI)
	base, err := f.h.Dashboard.URL(ctx)
	g.Expect(err).NotTo(HaveOccurred())

	good, _ := f.seed("team/good:1")
	slow, _ := f.seed("team/slow:1")
	missing := canonical(t, f.upstream.Host+"/team/missing:1")
	g.Expect(m1.Client.Create(ctx, deployment(namespace(t, m1), "web", good, missing))).To(Succeed())
	g.Expect(m2.Client.Create(ctx, daemonSet(namespace(t, m2), "agent", good, slow))).To(Succeed())

	b := newBrowser(t)
	shots := screenshotDir(t)

	// Clusters: both registrations, Connected, each with its Secret and convention.
	b.open(base + "/clusters")
	for _, m := range f.members {
		b.waitFor(fmt.Sprintf(`tr[data-cluster=%q][data-state="Connected"]`, m.Name))
	}
	b.waitText(fmt.Sprintf(`tr[data-cluster=%q]`, m2.Name), f.ns+"/"+m2.Name+"-kubeconfig")
	b.waitText(fmt.Sprintf(`tr[data-cluster=%q]`, m2.Name), string(registration.ClusterAPI))
	b.screenshot(filepath.Join(shots, "clusters.png"))

	// Images: the failed one with its reason; the held-back one not Ready yet, then Ready live.
	b.open(base + "/images")
	b.eval(`window.__sameDocument = true`)
	b.waitText(fmt.Sprintf(`tr[data-image=%q][data-phase="Failed"]`, missing), v1alpha1.ReasonSourceNotFound)
	b.waitText(fmt.Sprintf(`tr[data-image=%q][data-phase="Failed"]`, missing), "check the image name and tag")
	b.waitFor(fmt.Sprintf(`tr[data-image=%q][data-phase="Ready"]`, good))
	b.waitFor(fmt.Sprintf(`tr[data-image=%q][data-phase="Pending"], tr[data-image=%q][data-phase="Cloning"]`, slow, slow))
	gate.waitHeld(t)
	b.screenshot(filepath.Join(shots, "images-copying.png"))
	gate.release()
	b.waitFor(fmt.Sprintf(`tr[data-image=%q][data-phase="Ready"]`, slow))
	g.Expect(b.eval(`window.__sameDocument === true && Number(document.getElementById("main").dataset.refreshed) > 0`)).To(BeTrue(),
		"the page was reloaded instead of updated in place")
	b.screenshot(filepath.Join(shots, "images.png"))

	// Search narrows the list as one types.
	b.do(chromedp.SendKeys(chromedp.CSS("#search"), "missing"))
	b.waitFor(`#images tbody tr[data-image]:only-child`)
	b.waitText(`#images tbody`, missing)

	// The API says what `kubectl get clonedimages` says in each member.
	expectAPIMatchesMembers(t, base, f)

	// Coverage: m1 runs a bare Pod of each kind of image (there is no kubelet: the test gives
	// them a running status); the page counts the running containers by where their image
	// comes from, follows a new one live, and the overview sums it up.
	backup := waitPhase(t, m1, good, v1alpha1.PhaseReady).Status.Backup
	cns := namespace(t, m1)
	for _, image := range []string{backup, good, missing} {
		runningPod(t, m1, cns, image)
	}
	b.open(base + "/coverage")
	b.eval(`window.__sameDocument = true`)
	row := fmt.Sprintf(`#coverage tbody tr[data-cluster=%q]`, m1.Name)
	b.waitFor(row + `[data-running="3"][data-backup="1"]`)
	b.waitExact(row+` td[data-state="owner-not-patchable"]`, "1")
	b.waitExact(row+` td[data-state="failed"]`, "1")
	b.waitExact(row+` td[data-state="not-copied-yet"]`, "0")
	b.waitText(row, v1alpha1.ReasonSourceNotFound)
	b.waitFor(fmt.Sprintf(`#coverage tbody tr[data-cluster=%q][data-running="0"]`, m2.Name))
	runningPod(t, m1, cns, backup)
	b.waitFor(row + `[data-running="4"][data-backup="2"]`)
	b.waitFor(`#coverage tfoot tr[data-cluster="(fleet)"][data-running="4"][data-backup="2"]`)
	g.Expect(b.eval(`window.__sameDocument === true && Number(document.getElementById("main").dataset.refreshed) > 0`)).To(BeTrue(),
		"the coverage page was reloaded instead of updated in place")
	b.screenshot(filepath.Join(shots, "coverage.png"))
	b.open(base + "/")
	b.waitExact(`#coverage-share`, "50%")
	b.waitExact(`#coverage-upstream`, "2 of 4 from upstream")
	var cov dashboard.CoverageView
	g.Expect(getJSON(ctx, base+"/api/v1/coverage", &cov)).To(Succeed())
	g.Expect(cov.Fleet).To(Equal(map[images.ContainerState]int{images.FromBackup: 2, images.OwnerNotPatchable: 1, images.CopyFailed: 1}))

	// A member whose API server stops turns Unreachable on the page, live.
	b.open(base + "/clusters")
	b.eval(`window.__sameDocument = true`)
	g.Expect(m1.StopAPIServer()).To(Succeed())
	b.waitFor(fmt.Sprintf(`tr[data-cluster=%q][data-state="Unreachable"]`, m1.Name))
	b.waitFor(fmt.Sprintf(`tr[data-cluster=%q][data-state="Connected"]`, m2.Name))
	g.Expect(b.eval(`window.__sameDocument === true`)).To(BeTrue())
	b.screenshot(filepath.Join(shots, "clusters-unreachable.png"))
	b.open(base + "/")
	b.waitText(`#clusters-unreachable`, "1 unreachable")
	b.waitText(`#images-failed`, "1 failed")
	b.waitText(`#coverage-uncounted`, "not every cluster is counted")
	b.screenshot(filepath.Join(shots, "overview.png"))
	// The coverage page says which member it could not count.
	b.open(base + "/coverage")
	b.waitText(`#coverage-error`, m1.Name+" is Unreachable")
	b.waitFor(fmt.Sprintf(`#coverage tbody tr[data-cluster=%q]`, m2.Name))
	// The unreachable member's images stay, as last known.
	b.open(base + "/images")
	b.waitText(fmt.Sprintf(`tr[data-image=%q][data-phase="Failed"]`, missing), m1.Name+" (last known)")

	// Logs, filtered by cluster and level.
	b.open(base + "/logs?cluster=" + m1.Name)
	b.waitFor(fmt.Sprintf(`#logs tr[data-cluster=%q]`, m1.Name))
	g.Expect(b.eval(fmt.Sprintf(`document.querySelectorAll('#logs tr[data-cluster]:not([data-cluster=%q])').length`, m1.Name))).To(BeNumerically("==", 0))
	b.screenshot(filepath.Join(shots, "logs.png"))
	b.open(base + "/logs?level=error")
	b.waitFor(`#logs tr[data-level="error"]`)
	g.Expect(b.eval(`document.querySelectorAll('#logs tr[data-level]:not([data-level="error"])').length`)).To(BeNumerically("==", 0))

	expectNoCredentials(t, base, f)
}

// expectAPIMatchesMembers compares /api/v1/images with the ClonedImages listed from each
// member's API server, as kubectl would: every object is there, in its cluster, with the same
// phase, backup and digest, and the API has nothing more.
func expectAPIMatchesMembers(t *testing.T, base string, f *fleet) {
	t.Helper()
	var diff string
	err := testenv.WaitFor(t.Context(), wait, func(ctx context.Context) (bool, error) {
		var imgs []dashboard.Image
		if err := getJSON(ctx, base+"/api/v1/images", &imgs); err != nil {
			return false, err
		}
		got := map[string]dashboard.ImageIn{}
		for _, img := range imgs {
			for _, in := range img.In {
				got[in.Cluster+"/"+img.Source] = in
			}
		}
		want := map[string]dashboard.ImageIn{}
		for _, m := range f.members {
			var list v1alpha1.ClonedImageList
			if err := m.Client.List(ctx, &list); err != nil {
				return false, err
			}
			for _, ci := range list.Items {
				want[m.Name+"/"+ci.Spec.Source] = dashboard.ImageIn{Cluster: m.Name, Name: ci.Name, Phase: string(ci.Status.Phase), Backup: ci.Status.Backup, Digest: ci.Status.Digest}
			}
		}
		diff = ""
		for k, w := range want {
			gi, ok := got[k]
			if !ok || gi.Name != w.Name || gi.Phase != w.Phase || gi.Backup != w.Backup || gi.Digest != w.Digest {
				diff += fmt.Sprintf("\n  %s: member %+v, API %+v", k, w, gi)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				diff += fmt.Sprintf("\n  %s: in the API, not in the member", k)
			}
		}
		return diff == "" && len(want) == 4, nil // good in both, missing in m1, slow in m2
	})
	NewWithT(t).Expect(err).NotTo(HaveOccurred(), "the API and the members' ClonedImages differ:%s", diff)
}

// expectNoCredentials fetches every page and API response and looks for the backup registry's
// password and every member's kubeconfig secrets, raw and base64-encoded.
func expectNoCredentials(t *testing.T, base string, f *fleet) {
	t.Helper()
	g := NewWithT(t)
	secrets := map[string]string{
		"backup registry password":      f.backup.Password,
		"backup registry basic auth":    base64.StdEncoding.EncodeToString([]byte(f.backup.Username + ":" + f.backup.Password)),
		"backup registry docker config": base64.StdEncoding.EncodeToString(f.backup.DockerConfigJSON()),
		"member kubeconfig (whole)":     base64.StdEncoding.EncodeToString(f.members[0].Kubeconfig),
	}
	g.Expect(f.backup.Password).NotTo(BeEmpty())
	for _, m := range f.members {
		kc, err := clientcmd.Load(m.Kubeconfig)
		g.Expect(err).NotTo(HaveOccurred())
		for name, a := range kc.AuthInfos {
			for what, data := range map[string][]byte{"client certificate": a.ClientCertificateData, "client key": a.ClientKeyData, "token": []byte(a.Token)} {
				if len(data) == 0 {
					continue
				}
				secrets[m.Name+" "+name+" "+what] = base64.StdEncoding.EncodeToString(data)
				// A line from the middle of the PEM body, as it would appear if printed raw.
				if lines := strings.Split(string(data), "\n"); len(lines) > 3 {
					secrets[m.Name+" "+name+" "+what+" (PEM line)"] = lines[len(lines)/2]
				} else {
					secrets[m.Name+" "+name+" "+what+" (raw)"] = string(data)
				}
			}
		}
		g.Expect(len(secrets)).To(BeNumerically(">", 5), "the member kubeconfig holds no credential to look for")
	}
	paths := []string{"/", "/?fragment=1", "/clusters", "/images", "/images?q=team", "/coverage", "/api/v1/coverage", "/logs", "/logs?level=debug", "/api/v1/overview", "/api/v1/clusters", "/api/v1/images", "/api/v1/logs?limit=100000"}
	for _, p := range paths {
		body, err := getBody(t.Context(), base+p)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(body).NotTo(BeEmpty())
		for what, s := range secrets {
			g.Expect(body).NotTo(ContainSubstring(s), "%s shows the %s", p, what)
		}
	}
}

func getBody(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

func getJSON(ctx context.Context, url string, v any) error {
	body, err := getBody(ctx, url)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(body), v)
}

func canonical(t *testing.T, image string) string {
	t.Helper()
	ref, err := imageref.Parse(image)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return ref.String()
}

// requireChromium makes sure /usr/bin/chromium is there, installing it with
// hack/browser-deps.sh when it is not; it skips the test, loudly, only when that fails.
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromium); err == nil {
		return
	}
	root, err := testenv.RepoRoot()
	if err == nil {
		out, ierr := exec.Command(filepath.Join(root, "hack", "browser-deps.sh")).CombinedOutput()
		if _, err = os.Stat(chromium); err == nil {
			return
		}
		err = fmt.Errorf("%v: %s", ierr, out)
	}
	t.Skipf("\n\n!!! SKIPPING THE BROWSER TEST: %s is missing and hack/browser-deps.sh could not install it: %v\n!!! run `make browser-deps` (as root) and test again\n", chromium, err)
}

func screenshotDir(t *testing.T) string {
	t.Helper()
	// Screenshots are kept only where ARTIFACTS asks (CI uploads that folder); otherwise they
	// live as long as the test, so a run never writes into the repository.
	dir := os.Getenv("ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	dir = filepath.Join(dir, "screenshots")
	NewWithT(t).Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
	return dir
}

// browser is a headless Chromium tab.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Do starts the browser, bound to ctx (not to a step's timeout).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	return &browser{t: t, ctx: ctx}
}

func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, wait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

func (b *browser) open(url string) {
	b.t.Helper()
	b.do(chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("#main")))
}

func (b *browser) eval(js string) any {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, wait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[any](js))
	if err != nil {
		b.t.Fatalf("browser: evaluating %s: %v", js, err)
	}
	return v
}

// waitFor waits until a node matches the CSS selector sel. It polls with JavaScript rather than
// watching nodes, because the page replaces its content every two seconds.
func (b *browser) waitFor(sel string) {
	b.t.Helper()
	b.poll(fmt.Sprintf(`document.querySelector(%s) !== null`, jsString(sel)), sel)
}

// waitExact waits until the text of the node matching sel is text, spaces around it aside.
func (b *browser) waitExact(sel, text string) {
	b.t.Helper()
	b.poll(fmt.Sprintf(`((document.querySelector(%s) || {}).textContent || "").trim() === %s`, jsString(sel), jsString(text)), sel+" reading "+text)
}

// waitText waits until the node matching sel contains text.
func (b *browser) waitText(sel, text string) {
	b.t.Helper()
	b.poll(fmt.Sprintf(`((document.querySelector(%s) || {}).textContent || "").includes(%s)`, jsString(sel), jsString(text)), sel+" containing "+text)
}

func (b *browser) poll(js, what string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, wait)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(wait))); err != nil {
		hctx, hcancel := context.WithTimeout(b.ctx, 10*time.Second)
		defer hcancel()
		html, _ := chromedp.Run(hctx, chromedp.OuterHTML(chromedp.CSS("#main")))
		b.t.Fatalf("browser: waiting for %s: %v\npage:\n%s", what, err, html)
	}
}

func (b *browser) screenshot(path string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, wait)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("browser: screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// gate is a registry transport that holds every request whose path contains fragment until
// released, so that a copy stays in progress while the test looks.
type gate struct {
	fragment string
	next     http.RoundTripper
	open     chan struct{}
	held     chan struct{}
	once     sync.Once
	heldOnce sync.Once
}

func newGate(fragment string) *gate {
	return &gate{fragment: fragment, next: remote.DefaultTransport.(*http.Transport).Clone(), open: make(chan struct{}), held: make(chan struct{})}
}

func (g *gate) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.Contains(req.URL.Path, g.fragment) {
		g.heldOnce.Do(func() { close(g.held) })
		select {
		case <-g.open:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
	return g.next.RoundTrip(req)
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

// waitHeld waits until a request is being held.
func (g *gate) waitHeld(t *testing.T) {
	t.Helper()
	select {
	case <-g.held:
	case <-time.After(wait):
		t.Fatalf("no request for %s reached the registry", g.fragment)
	}
}

// runningPod creates a bare Pod in ns of c whose containers run images, with the status a
// kubelet would give it once they all run.
func runningPod(t *testing.T, c *testenv.Cluster, ns string, images ...string) {
	t.Helper()
	g := NewWithT(t)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "bare-"}, Spec: podSpec(images...).Spec}
	g.Expect(c.Client.Create(t.Context(), p)).To(Succeed())
	p.Status.Phase = corev1.PodRunning
	for _, ctr := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: ctr.Name, Image: ctr.Image,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}})
	}
	g.Expect(c.Client.Status().Update(t.Context(), p)).To(Succeed())
}
