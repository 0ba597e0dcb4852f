package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/agent/internal/agenttest"
	"github.com/image-cloner/image-cloner/internal/testenv"
	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// TestAgentBinary_servesWebhooksWithCertManagerCertsAndRestores runs the real agent binary,
// in --cert-manager mode (certificate files in --cert-dir, CA bundle set as cert-manager's
// injector would), against a real API server, then uninstalls with `agent restore`.
func TestAgentBinary_servesWebhooksWithCertManagerCertsAndRestores(t *testing.T) {
	g := NewWithT(t)
	root, err := testenv.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	cluster := testenv.StartCluster(t, testenv.ClusterOptions{
		CRDs:         true,
		WebhookPaths: []string{filepath.Join(root, "deploy", "webhooks", "webhooks.yaml")},
	})
	c := cluster.Client
	ctx := context.Background()

	dir := t.TempDir()
	bin := filepath.Join(dir, "agent")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)

	// What cert-manager would provide: a mounted tls.crt/tls.key and the injected caBundle.
	ca, err := testenv.NewCA()
	g.Expect(err).NotTo(HaveOccurred())
	certDir := filepath.Join(dir, "certs")
	g.Expect(os.MkdirAll(certDir, 0o700)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(certDir, "tls.crt"), ca.ServerCertPEM, 0o600)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(certDir, "tls.key"), ca.ServerKeyPEM, 0o600)).To(Succeed())
	injectFailClosed(ctx, g, c, ca.CertPEM)

	g.Expect(agenttest.EnsureNamespace(ctx, c, apiv1.DefaultNamespace)).To(Succeed())
	ns, err := agenttest.Namespace(ctx, c, nil)
	g.Expect(err).NotTo(HaveOccurred())
	const backup = "backup.example.com/acme/docker.io_library_nginx:1.25"
	_, err = agenttest.ClonedImage(ctx, c, "nginx:1.25", apiv1.PhaseReady, backup)
	g.Expect(err).NotTo(HaveOccurred())

	var logs bytes.Buffer
	agent := exec.Command(bin,
		"--kubeconfig", cluster.KubeconfigPath,
		"--namespace", apiv1.DefaultNamespace,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--leader-elect=false",
		"--webhook-port", fmt.Sprint(cluster.Env.WebhookInstallOptions.LocalServingPort),
		"--cert-manager", "--cert-dir", certDir)
	agent.Stdout, agent.Stderr = &logs, &logs
	g.Expect(agent.Start()).To(Succeed())
	exited := make(chan error, 1)
	go func() { exited <- agent.Wait() }()
	t.Cleanup(func() {
		_ = agent.Process.Kill()
		if t.Failed() {
			t.Logf("agent logs:\n%s", logs.String())
		}
	})

	// With failurePolicy Fail, creating fails until the agent serves; then the Deployment is
	// admitted already pointed at the backup.
	var d = agenttest.Deployment(ns, "web", "nginx:1.25", "nginx:1.25")
	start := time.Now()
	g.Expect(testenv.WaitFor(ctx, 2*time.Minute, func(ctx context.Context) (bool, error) {
		d = agenttest.Deployment(ns, "web", "nginx:1.25", "nginx:1.25")
		return c.Create(ctx, d) == nil, nil
	})).To(Succeed())
	testenv.Report(t, "agent binary admitting requests %s after start", time.Since(start).Round(time.Millisecond))
	g.Expect(workload.Images(d)).To(Equal([]string{backup + "@" + agenttest.Digest}), "PIN_DIGEST defaults to true")

	// Uninstall: stop the agent, then restore.
	g.Expect(agent.Process.Signal(syscall.SIGTERM)).To(Succeed())
	select {
	case err := <-exited:
		g.Expect(err).NotTo(HaveOccurred(), "the agent exits cleanly on SIGTERM")
	case <-time.After(time.Minute):
		t.Fatal("agent did not exit within a minute of SIGTERM")
	}
	out, err = exec.Command(bin, "restore", "--kubeconfig", cluster.KubeconfigPath).CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "%s", out)
	g.Expect(strings.TrimSpace(string(out))).To(Equal("restored 1 workload(s)"))
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(d), d)).To(Succeed())
	g.Expect(workload.Images(d)).To(Equal([]string{"nginx:1.25"}))
}

func injectFailClosed(ctx context.Context, g Gomega, c client.Client, bundle []byte) {
	fail := admissionregistrationv1.Fail
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	g.Expect(c.Get(ctx, client.ObjectKey{Name: "image-cloner-validating"}, v)).To(Succeed())
	for i := range v.Webhooks {
		v.Webhooks[i].FailurePolicy, v.Webhooks[i].ClientConfig.CABundle = &fail, bundle
	}
	g.Expect(c.Update(ctx, v)).To(Succeed())
	m := &admissionregistrationv1.MutatingWebhookConfiguration{}
	g.Expect(c.Get(ctx, client.ObjectKey{Name: "image-cloner-mutating"}, m)).To(Succeed())
	for i := range m.Webhooks {
		m.Webhooks[i].FailurePolicy, m.Webhooks[i].ClientConfig.CABundle = &fail, bundle
	}
	g.Expect(c.Update(ctx, m)).To(Succeed())
}
