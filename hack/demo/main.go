package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/image-cloner/image-cloner/e2e/env"
	"github.com/image-cloner/image-cloner/internal/testenv"
)

func main() {
	bin := flag.String("bin", "bin", "directory holding the hub and agent binaries (make build)")
	dir := flag.String("dir", "demo", "directory for logs and kubeconfigs")
	exitWhenReady := flag.Bool("exit-when-ready", false, "stop everything and exit 0 once every image is Ready and every workload patched")
	timeout := flag.Duration("timeout", 0, "exit 1 if not ready within this long after the workloads are created; 0: no limit (10m with -exit-when-ready)")
	flag.Parse()
	if *exitWhenReady && *timeout == 0 {
		*timeout = 10 * time.Minute
	}
	// controller-runtime's client warns when no logger is set; the demo's own output is enough.
	ctrl.SetLogger(logr.Discard())
	os.Exit(run(*bin, *dir, *exitWhenReady, *timeout))
}

func run(bin, dir string, exitWhenReady bool, timeout time.Duration) int {
	start := time.Now()
	progress := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	for _, b := range []string{"hub", "agent"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			fmt.Fprintf(os.Stderr, "demo: %s/%s is missing: run 'make build' (or 'make demo', which builds it)\n", bin, b)
			return 1
		}
	}
	bin, _ = filepath.Abs(bin)
	if err := findAssets(progress); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t, cleanup := testenv.Standalone("image-cloner-demo")
	defer func() {
		progress("Stopping the hub, the agents, the clusters and the registries")
		cleanup()
		progress("Stopped: nothing left running")
	}()

	e := env.Start(t, env.Options{Bin: bin, Dir: dir, Progress: progress})
	if ctx.Err() != nil {
		return 130
	}
	samples, err := e.SeedSamples()
	if err != nil {
		progress("Seeding the upstream registry: %v", err)
		return 1
	}
	progress("Pushed to the upstream registry: %s, %s, %s (multi-arch: linux/amd64, linux/arm64)", samples["nginx"], samples["busybox"], samples["alpine"])
	created := time.Now()
	if err := e.CreateSamples(ctx, samples); err != nil {
		progress("Creating the sample workloads: %v", err)
		return 1
	}
	progress("Created Deployments and DaemonSets in namespace %s of each member", env.SampleNamespace)

	if e.DashboardURL != "" {
		fmt.Printf("dashboard: %s\n", e.DashboardURL)
	} else {
		fmt.Printf("metrics: %s\n", e.MetricsURL)
		fmt.Println("  (this bin/hub has no dashboard yet: --dashboard-bind-address is not among its flags)")
	}
	fmt.Printf("kubeconfig hub: %s\n", e.Kubeconfigs["hub"])
	for _, m := range e.Members {
		fmt.Printf("kubeconfig %s: %s\n", m.Name, e.Kubeconfigs[m.Name])
	}
	fmt.Printf("registry upstream: %s\n", e.Upstream.Host)
	fmt.Printf("registry backup: %s\n", e.BackupRegistry)
	kubectl := "kubectl"
	if _, err := exec.LookPath("kubectl"); err != nil {
		if a, err := testenv.Assets(); err == nil {
			kubectl = filepath.Join(a, "kubectl")
		}
	}
	m1 := e.Kubeconfigs[e.Members[0].Name]
	fmt.Printf(`
Try, in another terminal:
  KUBECONFIG=%[2]s %[1]s get clonedimages
  KUBECONFIG=%[2]s %[1]s -n %[3]s get deploy,ds -o wide
  KUBECONFIG=%[4]s %[1]s -n %[5]s get secrets
Logs: %[6]s/hub.log, %[6]s/agent-member-*.log. The backup registry's user is %[8]s (password in
Secret %[5]s/image-cloner-push-credentials of the hub cluster).
Run the e2e specs against this fleet:
  E2E_UPSTREAM=%[7]s E2E_KUBECONFIGS=%[9]s go test -tags e2e ./e2e/ -run TestExternal -v
Ctrl-C stops everything.

`, kubectl, m1, env.SampleNamespace, e.Kubeconfigs["hub"], env.Namespace, dir, e.Upstream.Host, e.Backup.Username, kubeconfigList(e))

	var deadline <-chan time.Time
	if timeout > 0 {
		deadline = time.After(timeout - time.Since(created))
	}
	exited := make(chan *env.Process, len(e.Processes()))
	for _, p := range e.Processes() {
		go func() {
			<-p.Exited()
			exited <- p
		}()
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	last, ready := "", false
	for {
		select {
		case <-ctx.Done():
			fmt.Println()
			return 0
		case p := <-exited:
			if ctx.Err() != nil {
				return 0
			}
			progress("%s exited unexpectedly; last lines of %s:\n%s", p.Name, p.LogPath, tail(p.LogPath, 20))
			return 1
		case <-deadline:
			progress("Not ready within %s: see the logs in %s", timeout, dir)
			return 1
		case <-tick.C:
		}
		st, err := e.Status(ctx)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				progress("Reading status: %v", err)
			}
			continue
		}
		if s := st.String(); s != last {
			last = s
			fmt.Printf("[%5.1fs] status: %s\n", time.Since(created).Seconds(), s)
		}
		if st.Done() && !ready {
			ready = true
			fmt.Printf("ready: every image Ready and every workload patched %s after the workloads were created\n", time.Since(created).Round(100*time.Millisecond))
			if exitWhenReady {
				return 0
			}
		}
	}
}

// kubeconfigList is E2E_KUBECONFIGS for this fleet: hub=PATH,member-1=PATH,...
func kubeconfigList(e *env.Env) string {
	parts := []string{"hub=" + e.Kubeconfigs["hub"]}
	for _, m := range e.Members {
		parts = append(parts, m.Name+"="+e.Kubeconfigs[m.Name])
	}
	return strings.Join(parts, ",")
}

// findAssets makes sure the control-plane and registry binaries exist: when IMAGE_CLONER_ASSETS
// is unset it runs hack/test-deps.sh with its progress shown, since the first run builds them.
func findAssets(progress func(string, ...any)) error {
	if os.Getenv(testenv.AssetsEnv) != "" {
		_, err := testenv.Assets()
		return err
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	progress("Finding kube-apiserver, etcd, kubectl and the registry (hack/test-deps.sh): the first run builds them from source, a few minutes; later runs use the cache")
	var out bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(root, "hack", "test-deps.sh"))
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("hack/test-deps.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if err := os.Setenv(testenv.AssetsEnv, lines[len(lines)-1]); err != nil {
		return err
	}
	_, err = testenv.Assets()
	return err
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer func() { _ = f.Close() }()
	var lines []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		lines = append(lines, s.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
