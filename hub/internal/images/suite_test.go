package images_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/hub/internal/images"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/imageref"
	"github.com/image-cloner/image-cloner/pkg/mirror"
)

// The suite is one real API server, registered with the hub's fleet as its local cluster, and
// the images Reconciler over it with a scripted Copier: each test uses images of its own, so
// they share the control plane.
var suite struct {
	cluster    *testenv.Cluster
	copier     *scriptedCopier
	fleet      *clusters.Fleet
	reconciler *images.Reconciler
}

// ignoredNamespace is in the suite's NAMESPACES_TO_IGNORE.
const ignoredNamespace = "ignored-by-config"

const wait = 60 * time.Second

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	t, done := testenv.Standalone("images-suite")
	c := testenv.StartCluster(t, testenv.ClusterOptions{Name: "member", CRDs: true})
	suite.cluster = c
	suite.copier = &scriptedCopier{script: map[string][]step{}, present: map[string]v1.Hash{}}

	cfg, err := config.Parse(map[string]string{
		config.KeyBackupRegistry:     "backup.example/acme",
		config.KeyTagRefreshInterval: "1s",
		config.KeyVerifyInterval:     "1s",
		config.KeyImagesToIgnore:     "registry.example/ignored/*",
		config.KeyNamespacesToIgnore: "kube-system," + ignoredNamespace,
	}, v1alpha1.DefaultNamespace)
	if err != nil {
		t.Fatalf("configuration: %v", err)
	}
	scheme := testenv.Scheme()
	mgr, err := ctrl.NewManager(c.Config, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatalf("manager: %v", err)
	}
	reg := clusters.New(scheme, nil, logr.Discard(), clusters.Options{ProbeInterval: time.Second, BackoffInitial: 100 * time.Millisecond})
	reg.AddLocal(c.Config, v1alpha1.DefaultNamespace)
	suite.fleet = reg
	if err := mgr.Add(reg); err != nil {
		t.Fatalf("adding the fleet: %v", err)
	}
	r := &images.Reconciler{
		Fleet:   reg,
		Log:     logr.Discard(),
		InForce: func() (*config.Config, images.Copier) { return cfg, suite.copier },
	}
	suite.reconciler = r
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatalf("setting up the reconciler: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(ctx) }()
	code := m.Run()
	cancel()
	<-stopped
	done()
	os.Exit(code)
}

// step is one scripted answer of Copy for a source.
type step struct {
	res mirror.Result
	err error
}

// scriptedCopier answers Copy for each source with its script, one step per call, repeating
// the last; Present answers from what the last successful Copy put in place.
type scriptedCopier struct {
	mu      sync.Mutex
	script  map[string][]step
	present map[string]v1.Hash // by backup repository
	calls   map[string]int
}

func (c *scriptedCopier) set(src string, steps ...step) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.script[src] = steps
}

func (c *scriptedCopier) Copy(_ context.Context, src, dst name.Reference) (mirror.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	steps := c.script[src.String()]
	if len(steps) == 0 {
		return mirror.Result{}, fmt.Errorf("no script for %s", src)
	}
	n := min(c.calls[src.String()], len(steps)-1)
	c.calls[src.String()]++
	s := steps[n]
	if s.err == nil {
		c.present[dst.Context().Name()] = s.res.Digest
	}
	return s.res, s.err
}

func (c *scriptedCopier) callsFor(src string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	ref, err := name.ParseReference(src)
	if err != nil {
		return -1
	}
	return c.calls[ref.String()]
}

func (c *scriptedCopier) Present(_ context.Context, dst name.Reference, digest v1.Hash) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.present[dst.Context().Name()] == digest, nil
}

func (c *scriptedCopier) Forget(name.Reference) {}

func (c *scriptedCopier) prune(dst string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ref, err := name.ParseReference(dst)
	if err == nil {
		delete(c.present, ref.Context().Name())
	}
}

func digestOf(s string) v1.Hash {
	h, _, err := v1.SHA256(strings.NewReader(s))
	if err != nil {
		panic(err)
	}
	return h
}

func useImage(t *testing.T, image string) { useImages(t, nil, image) }

// useImages creates a Deployment with labels whose containers run images.
func useImages(t *testing.T, labels map[string]string, images ...string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	c := suite.cluster.Client
	NewWithT(t).Expect(c.Create(t.Context(), ns)).To(Succeed())
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "web", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			},
		},
	}
	for i, image := range images {
		d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: image})
	}
	NewWithT(t).Expect(c.Create(t.Context(), d)).To(Succeed())
}

// waitFor waits until the ClonedImage of image satisfies cond, and returns it.
func waitFor(t *testing.T, image string, what string, cond func(*v1alpha1.ClonedImage) bool) *v1alpha1.ClonedImage {
	t.Helper()
	ref, err := imageref.Parse(image)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	var ci *v1alpha1.ClonedImage
	err = testenv.WaitFor(t.Context(), wait, func(ctx context.Context) (bool, error) {
		ci = &v1alpha1.ClonedImage{}
		err := suite.cluster.Client.Get(ctx, client.ObjectKey{Name: imageref.ObjectName(ref)}, ci)
		if client.IgnoreNotFound(err) != nil {
			return false, err
		}
		return err == nil && cond(ci), nil
	})
	NewWithT(t).Expect(err).NotTo(HaveOccurred(), "ClonedImage of %s never %s; last: %+v", image, what, ci.Status)
	return ci
}

func readyReason(ci *v1alpha1.ClonedImage) string {
	if c := meta.FindStatusCondition(ci.Status.Conditions, v1alpha1.ReadyCondition); c != nil {
		return c.Reason
	}
	return ""
}

func TestBackUp_recordsEachOutcome(t *testing.T) {
	schema1 := &mirror.Schema1Error{Source: "x", Destination: "backup.example", Reason: "MANIFEST_INVALID"}
	for _, tc := range []struct {
		name   string
		steps  []step
		phase  v1alpha1.Phase
		reason string
	}{
		{"copied", []step{{res: mirror.Result{Digest: digestOf("copied"), Size: 10}}}, v1alpha1.PhaseReady, v1alpha1.ReasonCopied},
		{"already present", []step{{res: mirror.Result{Digest: digestOf("present"), AlreadyPresent: true}}}, v1alpha1.PhaseReady, v1alpha1.ReasonAlreadyPresent},
		{"schema 1 refused", []step{{err: fmt.Errorf("copying: %w", schema1)}}, v1alpha1.PhaseFailed, v1alpha1.ReasonSchema1Refused},
		{"rate limited", []step{{err: &mirror.RateLimitedError{Registry: "docker.io", RetryAfter: time.Hour}}}, v1alpha1.PhaseFailed, v1alpha1.ReasonRateLimited},
		{"something else", []step{{err: errors.New("boom")}}, v1alpha1.PhaseFailed, v1alpha1.ReasonCopyFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			image := "registry.example/outcome/" + strings.ReplaceAll(tc.name, " ", "-") + ":1"
			suite.copier.set(image, tc.steps...)
			useImage(t, image)
			ci := waitFor(t, image, string(tc.phase), func(ci *v1alpha1.ClonedImage) bool { return ci.Status.Phase == tc.phase })
			g := NewWithT(t)
			g.Expect(readyReason(ci)).To(Equal(tc.reason))
			g.Expect(ci.Status.Backup).To(HavePrefix("backup.example/acme/"))
			if tc.phase == v1alpha1.PhaseReady {
				g.Expect(ci.Status.Digest).To(Equal(tc.steps[0].res.Digest.String()))
				g.Expect(ci.Status.LastVerified).NotTo(BeNil())
			}
		})
	}
}

// A Ready backup stays Ready when its source goes away, and says so; once the backup is gone
// too, the image is Failed. The second half is the control: the first holds only because the
// backup is intact.
func TestBackUp_sourceGoneKeepsOnlyAnIntactBackupReady(t *testing.T) {
	g := NewWithT(t)
	image := "registry.example/gone/app:1"
	digest := digestOf("gone")
	suite.copier.set(image, step{res: mirror.Result{Digest: digest}})
	useImage(t, image)
	waitFor(t, image, "Ready", func(ci *v1alpha1.ClonedImage) bool { return ci.IsReady() })

	suite.copier.set(image, step{err: fmt.Errorf("resolving: %w", &transport.Error{StatusCode: http.StatusNotFound})})
	ci := waitFor(t, image, "reported as SourceNotFound", func(ci *v1alpha1.ClonedImage) bool {
		c := meta.FindStatusCondition(ci.Status.Conditions, v1alpha1.SourceCondition)
		return c != nil && c.Status == metav1.ConditionFalse
	})
	g.Expect(ci.IsReady()).To(BeTrue())
	g.Expect(ci.Status.Digest).To(Equal(digest.String()))

	suite.copier.prune(ci.Status.Backup)
	ci = waitFor(t, image, "Failed", func(ci *v1alpha1.ClonedImage) bool { return ci.Status.Phase == v1alpha1.PhaseFailed })
	g.Expect(readyReason(ci)).To(Equal(v1alpha1.ReasonSourceNotFound))
}

// Images matching IMAGES_TO_IGNORE, and workloads labelled image-cloner.io/ignore=true, get no
// copy; the same Deployment's other image (the control) does.
func TestBackUp_leavesIgnoredImagesAndOptedOutWorkloadsAlone(t *testing.T) {
	g := NewWithT(t)
	ignored, control := "registry.example/ignored/app:1", "registry.example/filters/control:1"
	optedOut := "registry.example/filters/opted-out:1"
	for _, image := range []string{ignored, control, optedOut} {
		suite.copier.set(image, step{res: mirror.Result{Digest: digestOf(image)}})
	}
	useImages(t, map[string]string{v1alpha1.IgnoreLabel: v1alpha1.IgnoreValue}, optedOut)
	useImages(t, nil, ignored, control)
	waitFor(t, control, "Ready", func(ci *v1alpha1.ClonedImage) bool { return ci.IsReady() })

	for _, image := range []string{ignored, optedOut} {
		ref, err := imageref.Parse(image)
		g.Expect(err).NotTo(HaveOccurred())
		err = suite.cluster.Client.Get(t.Context(), client.ObjectKey{Name: imageref.ObjectName(ref)}, &v1alpha1.ClonedImage{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%s got a ClonedImage: %v", image, err)
		g.Expect(suite.copier.callsFor(image)).To(BeZero(), "%s was copied", image)
	}
}
