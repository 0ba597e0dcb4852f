//go:build e2e

package reliability

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/e2e/env"
	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/internal/testenv"
)

// MemberStallScenario: the hub reaches the first member (member-1, first in the hub's order,
// so an image both members use is written there first) through a proxy that, for a while,
// accepts connections and answers nothing. The second member rolls out meanwhile: a workload
// with a new image, and workloads with images the stalled member also runs (whose reconcile
// writes the stalled member's ClonedImage too). They must converge (the figures are printed
// next to the same rollout before the stall, never asserted as bounds). The stall lasts until
// the hub has disconnected the member; a workload created in the stalled member meanwhile is
// patched once the proxy forwards again. The invariants hold throughout.
func MemberStallScenario(ctx context.Context, t *testing.T, in Input) {
	e := in.Env
	stalled, other := e.Members[0], e.Members[1]
	w := startWatcher(ctx, t, in, 1)

	proxy := startStallProxy(t, hostOf(t, stalled.Config.Host))
	restore := pointRegistrationAt(ctx, t, e, stalled.Name, "https://"+proxy.Addr())
	defer restore()
	defer proxy.Resume()

	// Before the stall, through the proxy: the stalled member runs three images the other will
	// use; the other rolls out a new image and one of those, timed (the usual speed).
	nsStalled, nsOther := newNamespace(ctx, t, stalled.Client), newNamespace(ctx, t, other.Client)
	shared := []string{seed(t, in, "stall-shared-a"), seed(t, in, "stall-shared-b"), seed(t, in, "stall-shared-c")}
	for i, img := range shared {
		createDeployment(ctx, t, in, stalled.Client, nsStalled, fmt.Sprintf("shared-%d", i), img)
	}
	for i := range shared {
		waitPatched(ctx, t, in, stalled.Client, nsStalled, fmt.Sprintf("shared-%d", i))
	}
	if proxy.Accepted() == 0 {
		t.Fatalf("the hub does not reach %s through the proxy", stalled.Name)
	}
	usualNew := timeRollout(ctx, t, in, other, nsOther, "usual-new", seed(t, in, "stall-usual"))
	usualShared := timeRollout(ctx, t, in, other, nsOther, "usual-shared", shared[2])

	proxy.Stall()
	stalledAt := time.Now()
	open := proxy.OpenAt(stalledAt)
	// The first rollouts right away, before the hub can have noticed (its next probe).
	firstShared := timeRollout(ctx, t, in, other, nsOther, "shared-0", shared[0])
	firstNew := timeRollout(ctx, t, in, other, nsOther, "new-0", seed(t, in, "stall-new-0"))
	// A workload in the stalled member, which the hub cannot see yet.
	late := seed(t, in, "stall-late")
	createDeployment(ctx, t, in, stalled.Client, nsStalled, "late", late)
	// Then more, while the member is still stalled.
	laterShared := timeRollout(ctx, t, in, other, nsOther, "shared-1", shared[1])
	laterNew := timeRollout(ctx, t, in, other, nsOther, "new-1", seed(t, in, "stall-new-1"))
	converged := time.Now()
	var dropped []string
	for _, n := range open {
		if c := proxy.ClosedAt(n); !c.IsZero() && c.Before(converged) {
			dropped = append(dropped, seconds(c.Sub(stalledAt)))
		}
	}
	// Without a bound of its own, a request to the stalled member ends only when client-go's
	// HTTP/2 health check gives up on the connection (30 s without a frame, then a 15 s
	// ping): the other member's rollouts then converge only once that connection is gone.
	// With every call bounded they converge while it is still open. (An ordering of two
	// events, not a time bound.)
	if len(open) == 0 {
		t.Fatalf("the hub had no connection to %s through the proxy when the stall began", stalled.Name)
	}
	if len(dropped) > 0 {
		t.Errorf("the other member's rollouts converged only after the hub's connection to the stalled member was dropped (%v after the stall began, %d connection(s) open at the stall): they waited on a request to the stalled member that nothing bounded", dropped, len(open))
	}

	// Hold the stall until the hub disconnects the member (its probes fail FailureThreshold
	// times in a row).
	hub := currentHub(ctx, t, in)
	err := testenv.WaitFor(ctx, in.timeout(), func(ctx context.Context) (bool, error) {
		connected, found, err := clusterConnected(ctx, hub, stalled.Name)
		return err == nil && found && !connected, nil
	})
	if err != nil {
		t.Fatalf("the hub never disconnected %s while it did not answer: %v", stalled.Name, err)
	}
	disconnected := time.Now()
	if patchedNow(ctx, in, stalled, nsStalled, "late") {
		t.Errorf("the workload created in %s during the stall was patched while the hub could not reach it", stalled.Name)
	}

	proxy.Resume()
	resumed := time.Now()
	caughtUp := waitPatched(ctx, t, in, stalled.Client, nsStalled, "late")
	finish(ctx, t, w)
	testenv.Report(t, "reliability: member API server stalled (accepts, never answers) %s until the hub disconnected it: the other member converged (workload created -> patched) in %s and %s for an image the stalled member also runs, first right after the stall began: new image %s, shared image %s; later in the stall: new %s, shared %s; the stalled member caught up %s after it answered again",
		seconds(disconnected.Sub(stalledAt)), seconds(usualNew), seconds(usualShared),
		seconds(firstNew), seconds(firstShared), seconds(laterNew), seconds(laterShared), seconds(caughtUp.Sub(resumed)))
}

// timeRollout creates a Deployment running image in c and returns how long it took to run its
// backup.
func timeRollout(ctx context.Context, t *testing.T, in Input, c *testenv.Cluster, ns, name, image string) time.Duration {
	t.Helper()
	start := time.Now()
	createDeployment(ctx, t, in, c.Client, ns, name, image)
	return waitPatched(ctx, t, in, c.Client, ns, name).Sub(start)
}

// pointRegistrationAt rewrites the server address in the kubeconfig of cluster's registration
// Secret (the hub reconnects: its hash changed) and returns a function that puts the original
// back.
func pointRegistrationAt(ctx context.Context, t *testing.T, e *env.Env, cluster, server string) func() {
	t.Helper()
	var list corev1.SecretList
	if err := e.Hub.Client.List(ctx, &list, client.InNamespace(env.Namespace)); err != nil {
		t.Fatalf("listing registration Secrets: %v", err)
	}
	var s *corev1.Secret
	for i := range list.Items {
		reg, err := registration.Parse(&list.Items[i])
		if err == nil && reg.Cluster == cluster {
			s = &list.Items[i]
		}
	}
	if s == nil {
		t.Fatalf("no registration Secret for %s", cluster)
	}
	key := registration.KubeconfigKey
	if conv, _ := registration.Matches(s); conv == registration.ClusterAPI {
		key = "value"
	}
	original := s.Data[key]
	kc, err := clientcmd.Load(original)
	if err != nil {
		t.Fatalf("parsing the kubeconfig of %s: %v", cluster, err)
	}
	for _, c := range kc.Clusters {
		c.Server = server
	}
	data, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatalf("writing the kubeconfig of %s: %v", cluster, err)
	}
	set := func(data []byte) error {
		cur := &corev1.Secret{}
		if err := e.Hub.Client.Get(ctx, client.ObjectKeyFromObject(s), cur); err != nil {
			return err
		}
		cur.Data[key] = data
		return e.Hub.Client.Update(ctx, cur)
	}
	if err := set(data); err != nil {
		t.Fatalf("pointing %s's registration at %s: %v", cluster, server, err)
	}
	return func() {
		if err := set(original); err != nil {
			t.Errorf("restoring %s's registration: %v", cluster, err)
		}
	}
}

// clusterConnected reads image_cloner_cluster_connected{cluster=name} from p's metrics.
func clusterConnected(ctx context.Context, p *env.Process, name string) (connected, found bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.MetricsURL(), nil)
	if err != nil {
		return false, false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, false, err
	}
	defer func() { _ = resp.Body.Close() }()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 64*1024), 4*1024*1024)
	prefix := `image_cloner_cluster_connected{cluster="` + name + `"} `
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), prefix); ok {
			return v == "1", true, nil
		}
	}
	return false, false, s.Err()
}

func hostOf(t *testing.T, server string) string {
	t.Helper()
	kc := strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://")
	if i := strings.IndexByte(kc, '/'); i >= 0 {
		kc = kc[:i]
	}
	return kc
}
