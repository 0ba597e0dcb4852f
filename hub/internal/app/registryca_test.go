package app_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/image-cloner/image-cloner/hub/internal/app"
	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
)

// TestRegistryCAFile_privateCARegistries runs the hub against an upstream and a backup registry
// that both serve TLS with certificates of private CAs (one each, the backup with auth). With
// both CAs in --registry-ca-file an image is backed up (Ready, the source's digest at the
// backup). Trusting only the upstream's CA, or neither, the ClonedImage fails with a message
// that names the registry, says "certificate signed by unknown authority" and which flag to set.
func TestRegistryCAFile_privateCARegistries(t *testing.T) {
	var upstream, backup *testenv.Registry
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		upstream = testenv.StartRegistry(t, testenv.RegistryOptions{Name: "upstream-tls", TLS: true})
		backup = testenv.StartRegistry(t, testenv.RegistryOptions{Name: "backup-tls", TLS: true, Auth: true})
	}()
	cs := testenv.StartClusters(t, testenv.ClusterOptions{CRDs: true}, "hub", "member1")
	wg.Wait()
	if upstream == nil || backup == nil {
		t.Fatal("a registry did not start")
	}
	hub, member := cs[0], cs[1]
	g := NewWithT(t)
	ctx := t.Context()
	g.Expect(hub.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: hubNS}})).To(Succeed())
	g.Expect(hub.Client.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: hubNS, Name: v1alpha1.ConfigMapName},
		Data:       map[string]string{config.KeyBackupRegistry: backup.Host + "/backups"},
	})).To(Succeed())
	g.Expect(hub.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: hubNS, Name: config.DefaultPushSecretName},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: backup.DockerConfigJSON()},
	})).To(Succeed())
	g.Expect(hub.Client.Create(ctx, member.RegistrationSecret(registration.Label, hubNS))).To(Succeed())
	ensureNamespace(t, member, hubNS)

	dir := t.TempDir()
	both, upstreamOnly := filepath.Join(dir, "both.pem"), filepath.Join(dir, "upstream.pem")
	g.Expect(os.WriteFile(both, append(append([]byte{}, upstream.CA.CertPEM...), backup.CA.CertPEM...), 0o600)).To(Succeed())
	g.Expect(os.WriteFile(upstreamOnly, upstream.CA.CertPEM, 0o600)).To(Succeed())

	for _, tc := range []struct {
		name   string
		caFile string
		// failsAt is the registry whose certificate is not trusted; nil: the backup succeeds.
		failsAt *testenv.Registry
	}{
		{"both CAs", both, nil},
		{"upstream CA only", upstreamOnly, backup},
		{"no CA file", "", upstream},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			stop := startHub(t, hub, tc.caFile)
			defer stop()
			img, err := random.Image(1024, 1)
			g.Expect(err).NotTo(HaveOccurred())
			ref, err := name.ParseReference(upstream.Host + "/tls/" + strings.ReplaceAll(strings.ToLower(tc.name), " ", "-") + ":v1")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(remote.Write(ref, img, remote.WithTransport(upstream.Transport()), remote.WithContext(ctx))).To(Succeed())
			ns := namespace(t, member)
			g.Expect(member.Client.Create(ctx, deployment(ns, "app", ref.String()))).To(Succeed())

			if tc.failsAt == nil {
				ci := waitPhase(t, member, ref.String(), v1alpha1.PhaseReady)
				want, _ := img.Digest()
				g.Expect(ci.Status.Digest).To(Equal(want.String()))
				backupRef, err := name.ParseReference(ci.Status.Backup)
				g.Expect(err).NotTo(HaveOccurred())
				desc, err := remote.Head(backupRef, remote.WithTransport(backup.Transport()),
					remote.WithAuth(&authn.Basic{Username: backup.Username, Password: backup.Password}), remote.WithContext(ctx))
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(desc.Digest).To(Equal(want))
				return
			}
			ci := waitPhase(t, member, ref.String(), v1alpha1.PhaseFailed)
			ready := apimeta.FindStatusCondition(ci.Status.Conditions, v1alpha1.ReadyCondition)
			g.Expect(ready).NotTo(BeNil())
			t.Logf("Ready condition: %s: %s", ready.Reason, ready.Message)
			g.Expect(ready.Message).To(And(
				ContainSubstring("certificate signed by unknown authority"),
				ContainSubstring(tc.failsAt.Host),
				ContainSubstring("--registry-ca-file"),
			))
		})
	}
}

// TestRegistryCAFile_badFiles: a missing file or one without a PEM certificate stops the hub
// at start with an error that names the flag.
func TestRegistryCAFile_badFiles(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, file, want string }{
		{"missing", filepath.Join(dir, "missing.pem"), "reading --registry-ca-file"},
		{"not PEM", notPEM, "holds no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := app.New(&rest.Config{Host: "https://127.0.0.1:1"}, app.Options{RegistryCAFile: tc.file, SkipNameValidation: true})
			NewWithT(t).Expect(err).To(MatchError(ContainSubstring(tc.want)))
		})
	}
}

// startHub starts an in-process hub on the hub cluster with --registry-ca-file caFile ("" for
// none) and returns what stops it.
func startHub(t *testing.T, hub *testenv.Cluster, caFile string) func() {
	t.Helper()
	h, err := app.New(hub.Config, app.Options{
		Namespace:      hubNS,
		RegistryCAFile: caFile,
		Clusters: clusters.Options{
			ProbeInterval: 250 * time.Millisecond, ProbeTimeout: 2 * time.Second, FailureThreshold: 2,
			BackoffInitial: 250 * time.Millisecond, BackoffMax: 2 * time.Second,
		},
		MetricsRegistry:    prometheus.NewRegistry(),
		Log:                testr.NewWithOptions(t, testr.Options{Verbosity: 0}),
		SkipNameValidation: true,
	})
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Manager.Start(ctx) }()
	return func() {
		cancel()
		<-done
	}
}
