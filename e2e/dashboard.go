package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// hubDashboardPort is where the hub's dashboard listens in its Pod: the default of
// --dashboard-bind-address, 127.0.0.1:8090, which deploy/hub keeps. Only a port-forward
// reaches the Pod's loopback (a Service or the API server's Pod proxy dial the Pod's IP).
const hubDashboardPort = 8090

// ForwardHubDashboard forwards a free port on this machine's loopback to the dashboard of the
// running hub Pod in namespace ns of hub (label app.kubernetes.io/name=image-cloner-hub), as
// `kubectl port-forward` does but in this process, and returns the dashboard's URL
// (http://127.0.0.1:<port>/) and a function that stops the forward. With several replicas it
// picks the first Ready one, which serves the dashboard only if it leads: deploy/hub runs one.
func ForwardHubDashboard(ctx context.Context, hub *Kube, ns string) (string, func(), error) {
	var pods corev1.PodList
	if err := hub.Client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/name": "image-cloner-hub"}); err != nil {
		return "", nil, fmt.Errorf("listing the hub's Pods in %s: %w", ns, err)
	}
	var name string
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil && ready(p) {
			name = p.Name
			break
		}
	}
	if name == "" {
		return "", nil, fmt.Errorf("no Ready hub Pod in %s of %s (%d Pods)", ns, hub.Name, len(pods.Items))
	}
	rt, upgrader, err := spdy.RoundTripperFor(hub.Config)
	if err != nil {
		return "", nil, fmt.Errorf("port-forward transport: %w", err)
	}
	u, err := url.Parse(hub.Config.Host)
	if err != nil {
		return "", nil, fmt.Errorf("the hub cluster's address %q: %w", hub.Config.Host, err)
	}
	u.Path = path.Join(u.Path, "api/v1/namespaces", ns, "pods", name, "portforward")
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	stop, readyCh := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(hubDashboardPort)}, stop, readyCh, io.Discard, io.Discard)
	if err != nil {
		return "", nil, fmt.Errorf("port-forward to %s/%s: %w", ns, name, err)
	}
	errCh := make(chan error, 1)
	go func() { errCh <- fw.ForwardPorts() }()
	select {
	case <-readyCh:
	case err := <-errCh:
		return "", nil, fmt.Errorf("port-forward to %s/%s: %w", ns, name, err)
	case <-ctx.Done():
		close(stop)
		return "", nil, fmt.Errorf("port-forward to %s/%s: %w", ns, name, ctx.Err())
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) != 1 {
		close(stop)
		return "", nil, fmt.Errorf("port-forward to %s/%s: no local port (%v)", ns, name, err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local), func() { close(stop) }, nil
}

func ready(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
