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

	"github.com/google/go-containerregistry/pkg/authn"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/e2e/env"
	"github.com/image-cloner/image-cloner/e2e/invariants"
	"github.com/image-cloner/image-cloner/internal/testenv"
	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/imageref"
	"github.com/image-cloner/image-cloner/pkg/mirror/mirrortest"
)

// Input is what every scenario takes: a running fleet whose registries are behind proxies.
type Input struct {
	Env *env.Env
	// UpstreamProxy is in front of Env.Upstream, reached at UpstreamHost: the scenarios'
	// workloads name their images there, so the hub pulls through it.
	UpstreamProxy *mirrortest.FaultProxy
	UpstreamHost  string
	// BackupProxy is in front of Env.Backup; BACKUP_REGISTRY (Env.BackupRegistry) names it,
	// so the hub pushes through it. The invariants watcher reads Env.Backup directly.
	BackupProxy *mirrortest.FaultProxy
	// Timeout bounds each wait (a failure bound, not a measurement); default 3 minutes.
	Timeout time.Duration
}

func (in Input) timeout() time.Duration {
	if in.Timeout == 0 {
		return 3 * time.Minute
	}
	return in.Timeout
}

// seed pushes a new random image upstream and returns its reference through the upstream proxy.
func seed(t *testing.T, in Input, repo string) string {
	t.Helper()
	ref, err := in.Env.SeedImage("reliability/" + repo + ":1")
	if err != nil {
		t.Fatalf("seeding %s: %v", repo, err)
	}
	return strings.Replace(ref, in.Env.Upstream.Host, in.UpstreamHost, 1)
}

// startWatcher starts the invariants watcher on every member and the backup registry.
func startWatcher(ctx context.Context, t *testing.T, in Input, maxCopies int) *invariants.Watcher {
	e := in.Env
	var members []invariants.Member
	for _, m := range e.Members {
		members = append(members, invariants.Member{Name: m.Name, Config: m.Config})
	}
	return invariants.Start(ctx, invariants.Input{
		Members:        members,
		BackupRegistry: e.BackupRegistry,
		Backup: invariants.Registry{Host: e.Backup.Host, Transport: e.Backup.Transport(),
			Auth: &authn.Basic{Username: e.Backup.Username, Password: e.Backup.Password}},
		Requests:  e.Backup.Requests,
		MaxCopies: maxCopies,
		Logf:      t.Logf,
	})
}

// finish stops the watcher, fails the test on any violation and returns the report.
func finish(ctx context.Context, t *testing.T, w *invariants.Watcher) *invariants.Report {
	t.Helper()
	r, err := w.Finish(ctx)
	if err != nil {
		t.Errorf("invariants watcher: %v", err)
		return &invariants.Report{}
	}
	if err := r.Err(); err != nil {
		t.Errorf("%v", err)
	}
	t.Logf("invariants: %d ClonedImages, %d backup references checked, %d digests verified blob by blob, %d extra copies",
		r.ClonedImages, r.BackupsChecked, r.DigestsVerified, r.ExtraCopies)
	return r
}

// copiesOf sums the copies the report counted in backup repositories whose name contains repo.
func copiesOf(r *invariants.Report, repo string) int {
	n := 0
	for k, c := range r.Copies {
		if strings.Contains(k, repo) {
			n += c
		}
	}
	return n
}

func newNamespace(ctx context.Context, t *testing.T, c client.Client) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "reliability-"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	return ns.Name
}

// createDeployment creates a Deployment running images, retrying while the API server does
// not answer (it may just have been restarted).
func createDeployment(ctx context.Context, t *testing.T, in Input, c client.Client, ns, name string, images ...string) {
	t.Helper()
	d := env.Deployment(ns, name, images...)
	err := testenv.WaitFor(ctx, in.timeout(), func(ctx context.Context) (bool, error) {
		if err := c.Create(ctx, d.DeepCopy()); err != nil {
			t.Logf("creating Deployment %s/%s: %v (retrying)", ns, name, err)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("creating Deployment %s/%s: %v", ns, name, err)
	}
}

// waitPatched waits until every container of the Deployment runs a backup and returns when
// that was first seen.
func waitPatched(ctx context.Context, t *testing.T, in Input, c client.Client, ns, name string) time.Time {
	t.Helper()
	var last []string
	err := testenv.WaitFor(ctx, in.timeout(), func(ctx context.Context) (bool, error) {
		d := &appsv1.Deployment{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
			return false, nil
		}
		last = last[:0]
		for _, ct := range d.Spec.Template.Spec.Containers {
			last = append(last, ct.Image)
			if !strings.HasPrefix(ct.Image, in.Env.BackupRegistry+"/") {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("Deployment %s/%s never ran only backups (images %v): %v", ns, name, last, err)
	}
	return time.Now()
}

// waitReady waits until the ClonedImage of source in c is Ready.
func waitReady(ctx context.Context, t *testing.T, in Input, c client.Client, source string) *apiv1.ClonedImage {
	t.Helper()
	ref, err := imageref.Parse(source)
	if err != nil {
		t.Fatalf("parsing %s: %v", source, err)
	}
	ci := &apiv1.ClonedImage{}
	err = testenv.WaitFor(ctx, in.timeout(), func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKey{Name: imageref.ObjectName(ref)}, ci); err != nil {
			return false, nil
		}
		return ci.IsReady(), nil
	})
	if err != nil {
		t.Fatalf("ClonedImage of %s never Ready (phase %q, conditions %v): %v", source, ci.Status.Phase, ci.Status.Conditions, err)
	}
	return ci
}

// leader returns the hub replica that holds the lease, from controller-runtime's
// leader_election_master_status gauge on each replica's /metrics.
func leader(ctx context.Context, in Input) (*env.Process, error) {
	var found *env.Process
	for _, p := range in.Env.HubProcesses {
		select {
		case <-p.Exited():
			continue
		default:
		}
		ok, err := isLeader(ctx, p)
		if err != nil {
			return nil, err
		}
		if ok {
			if found != nil {
				return nil, fmt.Errorf("both %s and %s say they lead", found.Name, p.Name)
			}
			found = p
		}
	}
	if found == nil {
		return nil, fmt.Errorf("no hub replica leads")
	}
	return found, nil
}

func isLeader(ctx context.Context, p *env.Process) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.MetricsURL(), nil)
	if err != nil {
		return false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, nil // not serving (yet): not the leader
	}
	defer func() { _ = resp.Body.Close() }()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for s.Scan() {
		line := s.Text()
		if strings.HasPrefix(line, "leader_election_master_status{") && strings.Contains(line, `name="image-cloner-hub"`) {
			return strings.HasSuffix(line, " 1"), nil
		}
	}
	return false, s.Err()
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

// patchedNow reports whether every container of the Deployment runs a backup right now.
func patchedNow(ctx context.Context, in Input, c *testenv.Cluster, ns, name string) bool {
	d := &appsv1.Deployment{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		return false
	}
	for _, ct := range d.Spec.Template.Spec.Containers {
		if !strings.HasPrefix(ct.Image, in.Env.BackupRegistry+"/") {
			return false
		}
	}
	return len(d.Spec.Template.Spec.Containers) > 0
}
