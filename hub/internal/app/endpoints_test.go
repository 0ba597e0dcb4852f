package app_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/go-logr/logr/testr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-cloner/image-cloner/hub/internal/app"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// TestHub_servesMetricsProbesAndDashboardOnTheirAddresses starts a hub as main.go does, with
// the metrics, probes, dashboard and pprof each on its own address, and a configuration that is not
// valid yet (no BACKUP_REGISTRY): /metrics has the hub's metrics (controller-runtime's registry),
// /healthz is ok, /readyz fails naming the configuration check, and the dashboard answers.
func TestHub_servesMetricsProbesAndDashboardOnTheirAddresses(t *testing.T) {
	g := NewWithT(t)
	hub := testenv.StartCluster(t, testenv.ClusterOptions{Name: "hub", CRDs: true})
	ctx := t.Context()
	g.Expect(hub.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: hubNS}})).To(Succeed())
	g.Expect(hub.Client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: hubNS, Name: v1alpha1.ConfigMapName}})).To(Succeed())

	metricsAddr, probeAddr, pprofAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	h, err := app.New(hub.Config, app.Options{
		Namespace: hubNS, MetricsBindAddress: metricsAddr, HealthProbeBindAddress: probeAddr, PprofBindAddress: pprofAddr,
		DashboardBindAddress: "127.0.0.1:0", Log: testr.New(t), SkipNameValidation: true,
	})
	g.Expect(err).NotTo(HaveOccurred())
	mctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Manager.Start(mctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	dash, err := h.Dashboard.URL(ctx)
	g.Expect(err).NotTo(HaveOccurred())

	for _, tc := range []struct {
		url, want string
		code      int
	}{
		{"http://" + metricsAddr + "/metrics", "image_cloner_copy_queue_depth", http.StatusOK},
		{"http://" + probeAddr + "/healthz", "ok", http.StatusOK},
		// controller-runtime withholds a failed check's error from the body: the name is what shows.
		{"http://" + probeAddr + "/readyz?verbose", "[-]configuration failed", http.StatusInternalServerError},
		{dash + "/api/v1/overview", `"clusters": 0`, http.StatusOK},
		{dash + "/", "image-cloner hub", http.StatusOK},
		// Where the fleet benchmark's unexplained heap per cached workload can be looked for.
		{"http://" + pprofAddr + "/debug/pprof/heap?debug=1", "heap profile", http.StatusOK},
	} {
		var code int
		var body string
		g.Expect(testenv.WaitFor(ctx, wait, func(ctx context.Context) (bool, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, tc.url, nil)
			if err != nil {
				return false, err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false, nil // not listening yet
			}
			defer resp.Body.Close()
			var sb strings.Builder
			buf := make([]byte, 32<<10)
			for {
				n, rerr := resp.Body.Read(buf)
				sb.Write(buf[:n])
				if rerr != nil {
					break
				}
			}
			code, body = resp.StatusCode, sb.String()
			return code == tc.code && strings.Contains(body, tc.want), nil
		})).To(Succeed(), "GET %s: %d %s", tc.url, code, body)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
