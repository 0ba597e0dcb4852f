package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/internal/enroll"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// syncBuffer is a bytes.Buffer two goroutines may use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestHub_runsWithTheOverlaysRBAC runs the real hub binary, with the args of the single-cluster
// overlay's Deployment, as its ServiceAccount (a token minted for image-cloner-hub, so the API
// server enforces exactly the overlay's RBAC), and checks that it works: it takes its Lease,
// connects its own cluster as member "local", is unready while BACKUP_REGISTRY is unset (as
// shipped; with a Warning Event on the ConfigMap) and ready once it is, sees a Deployment and
// records its image as a ClonedImage, and never logs a forbidden request.
func TestHub_runsWithTheOverlaysRBAC(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go is needed to build the hub")
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cluster := testenv.StartCluster(t, testenv.ClusterOptions{Name: "hub-rbac"})
	c := cluster.Client
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	objs := render(t, filepath.Join("overlays", "single-cluster"))
	apply(ctx, t, c, objs)
	const ns = "image-cloner-system"
	// The hub must not start before the API server's RBAC cache has its bindings, or it logs
	// forbidden requests this test refuses.
	waitForBindings(ctx, t, c, serviceAccount(ns, enroll.ServiceAccountName))

	dir := t.TempDir()
	kubeconfig, err := enroll.MintKubeconfig(ctx, cluster.Config, ns, "", time.Hour)
	if err != nil {
		t.Fatalf("minting a token for ServiceAccount %s/%s: %v", ns, enroll.ServiceAccountName, err)
	}
	kubeconfigPath := filepath.Join(dir, "hub.kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	hubBin := filepath.Join(dir, "hub")
	build := exec.CommandContext(ctx, goBin, "build", "-o", hubBin, "./hub")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./hub: %v\n%s", err, out)
	}

	d := as[appsv1.Deployment](t, find(objs, "Deployment", "image-cloner-hub"))
	if d.Spec.Template.Spec.ServiceAccountName != enroll.ServiceAccountName {
		t.Fatalf("the hub runs as %q; this test mints a token for %q", d.Spec.Template.Spec.ServiceAccountName, enroll.ServiceAccountName)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	probes := l.Addr().String()
	_ = l.Close()
	args := append(append([]string{}, d.Spec.Template.Spec.Containers[0].Args...),
		"--health-probe-bind-address="+probes, "--metrics-bind-address=0", "--dashboard-bind-address=0")
	var logs syncBuffer
	hub := exec.Command(hubBin, args...)
	hub.Env = append(os.Environ(), "KUBECONFIG="+kubeconfigPath)
	hub.Stdout, hub.Stderr = &logs, &logs
	if err := hub.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- hub.Wait() }()
	defer func() {
		_ = hub.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = hub.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("hub %s:\n%s", strings.Join(args, " "), logs.String())
		}
	}()

	// As shipped, without BACKUP_REGISTRY, the hub is unready and its log says what to set
	// (controller-runtime's /readyz withholds the reason).
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + probes + "/readyz?verbose")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	err = testenv.WaitFor(ctx, time.Minute, func(context.Context) (bool, error) {
		code, body := readyz()
		return code == http.StatusInternalServerError && strings.Contains(body, "[-]configuration failed") &&
			strings.Contains(logs.String(), "BACKUP_REGISTRY is empty: set it in ConfigMap image-cloner-system/image-cloner-configuration"), nil
	})
	if err != nil {
		code, body := readyz()
		t.Errorf("without BACKUP_REGISTRY the hub should be unready (/readyz: %d %s) and log what to set", code, body)
	}
	err = testenv.WaitFor(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		var events eventsv1.EventList
		if err := c.List(ctx, &events, client.InNamespace(ns)); err != nil {
			return false, err
		}
		for _, e := range events.Items {
			if e.Regarding.Kind == "ConfigMap" && e.Regarding.Name == v1alpha1.ConfigMapName && e.Type == corev1.EventTypeWarning && strings.Contains(e.Note, "BACKUP_REGISTRY") {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("no Warning Event on ConfigMap %s naming BACKUP_REGISTRY: %v", v1alpha1.ConfigMapName, err)
	}
	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: v1alpha1.ConfigMapName}, cm); err != nil {
		t.Fatal(err)
	}
	// A backup registry nothing listens on: the copy fails, the ClonedImage is written anyway.
	cm.Data["BACKUP_REGISTRY"] = "127.0.0.1:9/backup"
	if err := c.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}

	app := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}}
	labels := map[string]string{"app": "web"}
	const image = "127.0.0.1:9/library/web:1"
	web := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: image}}},
			},
		},
	}
	for _, o := range []client.Object{app, web} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	err = testenv.WaitFor(ctx, 2*time.Minute, func(ctx context.Context) (bool, error) {
		select {
		case err := <-exited:
			exited <- err
			return false, fmt.Errorf("the hub exited: %v", err)
		default:
		}
		var list v1alpha1.ClonedImageList
		if err := c.List(ctx, &list); err != nil {
			return false, err
		}
		for _, ci := range list.Items {
			if ci.Spec.Source == image {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no ClonedImage for %s: %v", image, err)
	}
	err = testenv.WaitFor(ctx, time.Minute, func(context.Context) (bool, error) {
		code, _ := readyz()
		return code == http.StatusOK, nil
	})
	if err != nil {
		code, body := readyz()
		t.Errorf("with BACKUP_REGISTRY set the hub never became ready: %d %s", code, body)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(strings.ToLower(line), "forbidden") {
			t.Errorf("the hub was refused something its RBAC should allow: %s", line)
		}
	}
}
