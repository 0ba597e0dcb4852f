//go:build e2e

package reliability

import (
	"context"
	"testing"
	"time"

	"github.com/image-cloner/image-cloner/e2e/env"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/mirror/mirrortest"
)

// slowUploads delays every blob upload to the backup registry by 5 s, so that a copy started
// after it is still moving content when the caller breaks something; it returns a function
// that waits until an upload has reached the proxy. The caller clears the fault.
func slowUploads(ctx context.Context, t *testing.T, in Input) (waitInFlight func()) {
	before := in.BackupProxy.Count("", mirrortest.KindUpload)
	in.BackupProxy.Add(mirrortest.Fault{Kind: mirrortest.KindUpload, Delay: 5 * time.Second})
	return func() {
		t.Helper()
		err := testenv.WaitFor(ctx, in.timeout(), func(context.Context) (bool, error) {
			return in.BackupProxy.Count("", mirrortest.KindUpload) > before, nil
		})
		if err != nil {
			in.BackupProxy.Clear()
			t.Fatalf("no copy reached the backup registry: %v", err)
		}
	}
}

// currentHub is the hub replica that does the work: the leader when there are several.
func currentHub(ctx context.Context, t *testing.T, in Input) *env.Process {
	t.Helper()
	if len(in.Env.HubProcesses) < 2 {
		return in.Env.HubProcess
	}
	var p *env.Process
	err := testenv.WaitFor(ctx, in.timeout(), func(ctx context.Context) (bool, error) {
		var err error
		p, err = leader(ctx, in)
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("finding the leading hub replica: %v", err)
	}
	return p
}

// HubKillScenario: the (leading) hub is SIGKILLed while it uploads an image to the backup
// registry, and a new process is started with the same arguments. The image ends Ready and
// its workload patched; no workload ever points at the half-written backup (the watcher checks
// each backup reference blob by blob). A second copy of the digest is allowed, as the copy was
// cut, and reported.
func HubKillScenario(ctx context.Context, t *testing.T, in Input) {
	e := in.Env
	w := startWatcher(ctx, t, in, 2)
	m := e.Members[0]
	ns := newNamespace(ctx, t, m.Client)
	img := seed(t, in, "hubkill")
	hub := currentHub(ctx, t, in)
	waitInFlight := slowUploads(ctx, t, in)
	createDeployment(ctx, t, in, m.Client, ns, "hubkill", img)
	waitInFlight()
	killed := time.Now()
	hub.Kill()
	in.BackupProxy.Clear()
	if _, err := e.Restart(ctx, hub); err != nil {
		t.Fatalf("restarting %s: %v", hub.Name, err)
	}
	restarted := time.Now()
	patched := waitPatched(ctx, t, in, m.Client, ns, "hubkill")
	r := finish(ctx, t, w)
	copies := copiesOf(r, "hubkill")
	testenv.Report(t, "reliability: hub SIGKILL mid-copy (%d replica(s)): new process ready %s after the kill, workload patched %s after the kill; %d manifest copies of the image landed (%d extra)",
		len(e.HubProcesses), seconds(restarted.Sub(killed)), seconds(patched.Sub(killed)), copies, max(copies-1, 0))
}

// MemberOutageScenario: a member's API server is stopped while the image both members use is
// being copied. The other member is served meanwhile (its workload is patched while the first
// is down), and the stopped one catches up once its API server is back.
func MemberOutageScenario(ctx context.Context, t *testing.T, in Input) {
	e := in.Env
	w := startWatcher(ctx, t, in, 1)
	up, down := e.Members[0], e.Members[1]
	img := seed(t, in, "outage")
	nsUp, nsDown := newNamespace(ctx, t, up.Client), newNamespace(ctx, t, down.Client)
	waitInFlight := slowUploads(ctx, t, in)
	createDeployment(ctx, t, in, up.Client, nsUp, "outage", img)
	createDeployment(ctx, t, in, down.Client, nsDown, "outage", img)
	waitInFlight()
	if err := stopAPIServer(ctx, down); err != nil {
		in.BackupProxy.Clear()
		t.Fatalf("stopping the API server of %s: %v", down.Name, err)
	}
	stopped := time.Now()
	in.BackupProxy.Clear()
	served := waitPatched(ctx, t, in, up.Client, nsUp, "outage")
	// Keep it down at least 5 s: long enough for the hub's writes to it to fail.
	if err := testenv.WaitFor(ctx, in.timeout(), func(context.Context) (bool, error) {
		return time.Since(stopped) >= 5*time.Second, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := down.StartAPIServer(); err != nil {
		t.Fatalf("restarting the API server of %s: %v", down.Name, err)
	}
	back := time.Now()
	agentRestarted := false
	err := testenv.WaitFor(ctx, in.timeout(), func(ctx context.Context) (bool, error) {
		agent := e.Agents[1]
		select {
		case <-agent.Exited():
			// controller-runtime exits when it cannot renew its leader lease: in a cluster the
			// kubelet restarts the pod; here the test does.
			t.Logf("%s exited while its API server was down; restarting it as its kubelet would", agent.Name)
			if _, err := e.Restart(ctx, agent); err != nil {
				return false, err
			}
			agentRestarted = true
		default:
		}
		return patchedNow(ctx, in, down, nsDown, "outage"), nil
	})
	if err != nil {
		t.Fatalf("%s never caught up: %v", down.Name, err)
	}
	caughtUp := time.Now()
	finish(ctx, t, w)
	testenv.Report(t, "reliability: member API server down %s: the other member patched %s into the outage, the stopped one caught up %s after its API server came back (agent restarted: %t)",
		seconds(back.Sub(stopped)), seconds(served.Sub(stopped)), seconds(caughtUp.Sub(back)), agentRestarted)
}

// AgentKillScenario: a member's agent is SIGKILLed; a workload created meanwhile gets its
// image copied (the hub does not need the agent) and is patched once a new agent process runs
// (after it takes over the old process's leader lease).
func AgentKillScenario(ctx context.Context, t *testing.T, in Input) {
	e := in.Env
	w := startWatcher(ctx, t, in, 1)
	m := e.Members[0]
	ns := newNamespace(ctx, t, m.Client)
	img := seed(t, in, "agentkill")
	agent := e.Agents[0]
	agent.Kill()
	killed := time.Now()
	createDeployment(ctx, t, in, m.Client, ns, "agentkill", img)
	waitReady(ctx, t, in, m.Client, img)
	if patchedNow(ctx, in, m, ns, "agentkill") {
		t.Errorf("the workload was patched while its agent was dead")
	}
	if _, err := e.Restart(ctx, agent); err != nil {
		t.Fatalf("restarting %s: %v", agent.Name, err)
	}
	restarted := time.Now()
	patched := waitPatched(ctx, t, in, m.Client, ns, "agentkill")
	finish(ctx, t, w)
	testenv.Report(t, "reliability: agent SIGKILL: down %s, workload created meanwhile patched %s after the new agent process started",
		seconds(restarted.Sub(killed)), seconds(patched.Sub(restarted)))
}

// LeaderFailoverScenario: of two hub replicas, the leader is SIGKILLed (its lease is not
// released); the other takes the lease over and copies an image that appears after the kill.
// The killed replica is started again as the standby.
func LeaderFailoverScenario(ctx context.Context, t *testing.T, in Input) {
	e := in.Env
	if len(e.HubProcesses) < 2 {
		t.Skip("the fleet runs one hub replica")
	}
	w := startWatcher(ctx, t, in, 1)
	m := e.Members[0]
	ns := newNamespace(ctx, t, m.Client)
	img := seed(t, in, "failover")
	old := currentHub(ctx, t, in)
	old.Kill()
	killed := time.Now()
	createDeployment(ctx, t, in, m.Client, ns, "failover", img)
	var next *env.Process
	err := testenv.WaitFor(ctx, in.timeout(), func(ctx context.Context) (bool, error) {
		p, err := leader(ctx, in)
		if err != nil {
			return false, nil
		}
		next = p
		return p != old, nil
	})
	if err != nil {
		t.Fatalf("no replica took over from %s: %v", old.Name, err)
	}
	tookOver := time.Now()
	patched := waitPatched(ctx, t, in, m.Client, ns, "failover")
	if _, err := e.Restart(ctx, old); err != nil {
		t.Fatalf("restarting %s as the standby: %v", old.Name, err)
	}
	finish(ctx, t, w)
	testenv.Report(t, "reliability: leader failover (SIGKILL, default 15 s lease): %s led %s after the kill, the new image's workload patched %s after the kill",
		next.Name, seconds(tookOver.Sub(killed)), seconds(patched.Sub(killed)))
}
