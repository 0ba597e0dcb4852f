package testenv_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/internal/testenv"
	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// TestHarness_startsClustersAndRegistries is the foundation's proof: two clusters and two
// registries (one with auth) run at once, and each does what the other tests rely on.
func TestHarness_startsClustersAndRegistries(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()

	type regResult struct {
		r *testenv.Registry
		d time.Duration
	}
	regs := make(chan regResult, 2)
	for _, opts := range []testenv.RegistryOptions{{Name: "anonymous"}, {Name: "auth", Auth: true}} {
		go func() {
			start := time.Now()
			regs <- regResult{testenv.StartRegistry(t, opts), time.Since(start)}
		}()
	}
	clusters := testenv.StartClusters(t, testenv.ClusterOptions{CRDs: true}, "alpha", "beta")
	var anon, auth *testenv.Registry
	var regStartup time.Duration
	for range 2 {
		res := <-regs
		g.Expect(res.r).NotTo(BeNil(), "a registry failed to start (see the log above)")
		if res.r.Username != "" {
			auth = res.r
		} else {
			anon = res.r
		}
		regStartup = max(regStartup, res.d)
	}
	testenv.Report(t, "harness: cluster startup (2 at once, with CRDs) %s and %s; registry startup %s",
		clusters[0].StartupTime.Round(time.Millisecond), clusters[1].StartupTime.Round(time.Millisecond), regStartup.Round(time.Millisecond))

	for _, c := range clusters {
		t.Run("cluster "+c.Name, func(t *testing.T) {
			g := NewWithT(t)
			// The clusters are independent: each has only its own objects.
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "harness-"}}
			g.Expect(c.Client.Create(ctx, ns)).To(Succeed())
			dep := deployment(ns.Name, c.Name+"-web", anon.Host+"/library/nginx:1.25")
			g.Expect(c.Client.Create(ctx, dep)).To(Succeed())
			var list appsv1.DeploymentList
			g.Expect(c.Client.List(ctx, &list)).To(Succeed())
			g.Expect(list.Items).To(HaveLen(1))
			g.Expect(list.Items[0].Name).To(Equal(c.Name + "-web"))

			// The CRD is installed with the printer columns of the design.
			var crd apiextensionsv1.CustomResourceDefinition
			g.Expect(c.Client.Get(ctx, client.ObjectKey{Name: "clonedimages.image-cloner.io"}, &crd)).To(Succeed())
			g.Expect(crd.Spec.Scope).To(Equal(apiextensionsv1.ClusterScoped))
			var cols []string
			for _, col := range crd.Spec.Versions[0].AdditionalPrinterColumns {
				cols = append(cols, col.Name)
			}
			g.Expect(cols).To(Equal([]string{"Source", "Backup", "Digest", "Phase", "Age"}))

			ci := &apiv1.ClonedImage{
				ObjectMeta: metav1.ObjectMeta{Name: "docker.io-library-nginx-1.25-3f9a1c2e"},
				Spec:       apiv1.ClonedImageSpec{Source: "docker.io/library/nginx:1.25"},
			}
			g.Expect(c.Client.Create(ctx, ci)).To(Succeed())
			ci.Status.Phase = apiv1.PhaseReady
			ci.Status.Backup = auth.Host + "/backup/docker.io_library_nginx:1.25"
			ci.Status.Digest = "sha256:" + fmt.Sprintf("%064d", 1)
			g.Expect(c.Client.Status().Update(ctx, ci)).To(Succeed())
			var got apiv1.ClonedImage
			g.Expect(c.Client.Get(ctx, client.ObjectKeyFromObject(ci), &got)).To(Succeed())
			g.Expect(got.IsReady()).To(BeTrue())

			// The schema refuses what the design forbids.
			bad := &apiv1.ClonedImage{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: apiv1.ClonedImageSpec{Source: ""}}
			g.Expect(c.Client.Create(ctx, bad)).NotTo(Succeed())

			// Both registration conventions carry a kubeconfig that reaches this cluster.
			for _, conv := range []registration.Convention{registration.Label, registration.ClusterAPI} {
				s := c.RegistrationSecret(conv, "image-cloner")
				reg, err := registration.Parse(s)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(reg.Cluster).To(Equal(c.Name))
				rc, err := client.New(reg.Config, client.Options{Scheme: testenv.Scheme()})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(rc.Get(ctx, client.ObjectKeyFromObject(dep), &appsv1.Deployment{})).To(Succeed())
			}
		})
	}

	t.Run("auth registry", func(t *testing.T) {
		g := NewWithT(t)
		img, err := random.Image(1024, 2)
		g.Expect(err).NotTo(HaveOccurred())
		ref, err := name.ParseReference(auth.Host + "/harness/app:v1")
		g.Expect(err).NotTo(HaveOccurred())
		creds := remote.WithAuth(&authn.Basic{Username: auth.Username, Password: auth.Password})
		tr := remote.WithTransport(auth.Transport())
		g.Expect(remote.Write(ref, img, creds, tr, remote.WithContext(ctx))).To(Succeed())

		got, err := remote.Image(ref, creds, tr, remote.WithContext(ctx))
		g.Expect(err).NotTo(HaveOccurred())
		want, _ := img.Digest()
		g.Expect(got.Digest()).To(Equal(want))

		_, err = remote.Image(ref, tr, remote.WithContext(ctx))
		var terr *transport.Error
		g.Expect(errors.As(err, &terr)).To(BeTrue(), "anonymous read must be refused, got %v", err)
		g.Expect(terr.StatusCode).To(Equal(http.StatusUnauthorized))

		_, err = remote.Image(ref, remote.WithAuth(&authn.Basic{Username: auth.Username, Password: "wrong"}), tr)
		g.Expect(errors.As(err, &terr)).To(BeTrue(), "a wrong password must be refused, got %v", err)
		g.Expect(terr.StatusCode).To(Equal(http.StatusUnauthorized))

		// The registry itself saw the push: counted from its access log.
		puts, err := auth.CountRequests(http.MethodPut, "/v2/harness/app/manifests/v1")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(puts).To(Equal(1))
	})

	t.Run("anonymous registry restarts with its content", func(t *testing.T) {
		g := NewWithT(t)
		img, err := random.Image(512, 1)
		g.Expect(err).NotTo(HaveOccurred())
		ref, _ := name.ParseReference(anon.Host + "/harness/keep:v1")
		g.Expect(remote.Write(ref, img, remote.WithContext(ctx))).To(Succeed())
		anon.Stop()
		_, err = remote.Head(ref, remote.WithContext(ctx))
		g.Expect(err).To(HaveOccurred(), "a stopped registry must not answer")
		g.Expect(anon.Start()).To(Succeed())
		desc, err := remote.Head(ref, remote.WithContext(ctx))
		g.Expect(err).NotTo(HaveOccurred())
		want, _ := img.Digest()
		g.Expect(desc.Digest).To(Equal(want))
	})
}

// TestRegistry_servesTLSWithItsOwnCA shows the TLS registry works for a client that trusts the
// test's CA, and only for one that does.
func TestRegistry_servesTLSWithItsOwnCA(t *testing.T) {
	g := NewWithT(t)
	r := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "tls", TLS: true})
	g.Expect(r.URL).To(HavePrefix("https://"))
	img, err := random.Image(256, 1)
	g.Expect(err).NotTo(HaveOccurred())
	ref, _ := name.ParseReference(r.Host + "/tls/app:v1")
	g.Expect(remote.Write(ref, img, remote.WithTransport(r.Transport()), remote.WithContext(t.Context()))).To(Succeed())

	resp, err := http.Get(r.URL + "/v2/")
	if err == nil {
		_ = resp.Body.Close()
	}
	g.Expect(err).To(MatchError(ContainSubstring("certificate")), "a client without the CA must not trust the registry")
}

// TestRegistry_extraUsers shows every account of RegistryOptions.Users logs in with its own
// password (and only with it), and DockerConfigJSONFor hands out that account's credentials.
func TestRegistry_extraUsers(t *testing.T) {
	g := NewWithT(t)
	r := testenv.StartRegistry(t, testenv.RegistryOptions{Name: "users", Auth: true, Username: "pusher",
		Users: map[string]string{"puller": "", "fixed": "fixed-password"}})
	g.Expect(r.Users).To(HaveLen(3))
	g.Expect(r.Users).To(HaveKeyWithValue("pusher", r.Password))
	g.Expect(r.Users).To(HaveKeyWithValue("fixed", "fixed-password"))
	g.Expect(r.Users["puller"]).NotTo(BeEmpty(), "an empty password gets a random one")
	g.Expect(r.Users["puller"]).NotTo(Equal(r.Password))

	login := func(user, password string) int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, r.URL+"/v2/", nil)
		req.SetBasicAuth(user, password)
		resp, err := (&http.Client{Transport: r.Transport()}).Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for user, password := range r.Users {
		g.Expect(login(user, password)).To(Equal(http.StatusOK), "user %s", user)
		g.Expect(login(user, password+"x")).To(Equal(http.StatusUnauthorized), "user %s with a wrong password", user)
	}
	g.Expect(login("puller", r.Password)).To(Equal(http.StatusUnauthorized), "the push password is not the pull account's")

	data, err := r.DockerConfigJSONFor("puller")
	g.Expect(err).NotTo(HaveOccurred())
	var cfg struct {
		Auths map[string]struct{ Username, Password, Auth string }
	}
	g.Expect(json.Unmarshal(data, &cfg)).To(Succeed())
	g.Expect(cfg.Auths).To(HaveKey(r.Host))
	g.Expect(cfg.Auths[r.Host].Username).To(Equal("puller"))
	g.Expect(cfg.Auths[r.Host].Password).To(Equal(r.Users["puller"]))
	g.Expect(string(data)).NotTo(ContainSubstring(r.Password))
	_, err = r.DockerConfigJSONFor("nobody")
	g.Expect(err).To(HaveOccurred())
}

// TestCluster_apiserverRestartKeepsKubeconfig shows a member's API server can be stopped and
// brought back with the kubeconfigs handed out before still valid (the hub's reconnect tests).
func TestCluster_apiserverRestartKeepsKubeconfig(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	c := testenv.StartCluster(t, testenv.ClusterOptions{Name: "restart"})
	g.Expect(c.StopAPIServer()).To(Succeed())
	err := c.Client.Get(ctx, client.ObjectKey{Name: "default"}, &corev1.Namespace{})
	g.Expect(err).To(HaveOccurred())
	g.Expect(c.StartAPIServer()).To(Succeed())
	g.Expect(testenv.WaitFor(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		return c.Client.Get(ctx, client.ObjectKey{Name: "default"}, &corev1.Namespace{}) == nil, nil
	})).To(Succeed())
}

func deployment(namespace, name, image string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: image}}},
			},
		},
	}
}
