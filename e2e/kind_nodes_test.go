//go:build e2e

package e2e_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/image-cloner/image-cloner/e2e"
)

// TestKindNodes runs the specs only real nodes can answer (e2e/nodes.go) against the fleet
// TestExternal reads, when its registries are Docker containers on this machine (make e2e-kind):
//
//	E2E_KIND_UPSTREAM_CONTAINER  the upstream registry's container (kind-registry)
//	E2E_KIND_BACKUP_CONTAINER    the backup registry's container (kind-backup), whose log
//	                             is its access log
//	E2E_KIND_PULL_USER           the backup account of the members' pull Secret (puller)
//	E2E_KIND_PUSH_USER           the hub's push account (default pusher)
//	E2E_KIND_RUNNABLE_BINARY     a static binary that runs until SIGTERM (hack/kind/pause)
//
// Go runs it after TestExternal (file order), which matters: UpstreamGone stops the upstream
// registry for a while. The hub's dashboard, which PodsCoverage reads, is reached by a
// port-forward to the hub's Pod made in this process.
func TestKindNodes(t *testing.T) {
	upstream, backup := os.Getenv("E2E_KIND_UPSTREAM_CONTAINER"), os.Getenv("E2E_KIND_BACKUP_CONTAINER")
	if upstream == "" || backup == "" {
		t.Skip("E2E_KIND_UPSTREAM_CONTAINER and E2E_KIND_BACKUP_CONTAINER are not set: see TestKindNodes's doc comment")
	}
	ctx := t.Context()
	in := e2e.NodesInput{
		FleetInput:       externalFleet(t),
		RunnableBinary:   os.Getenv("E2E_KIND_RUNNABLE_BINARY"),
		PullUser:         os.Getenv("E2E_KIND_PULL_USER"),
		PushUser:         envOr("E2E_KIND_PUSH_USER", "pusher"),
		IgnoredNamespace: "kube-system",
		BackupLog: func(ctx context.Context) (string, error) {
			out, err := exec.CommandContext(ctx, "docker", "logs", backup).CombinedOutput()
			if err != nil {
				return "", fmt.Errorf("docker logs %s: %w: %s", backup, err, out)
			}
			return string(out), nil
		},
		StopUpstream:  func(ctx context.Context) error { return docker(ctx, "stop", upstream) },
		StartUpstream: func(ctx context.Context) error { return docker(ctx, "start", upstream) },
	}
	if in.RunnableBinary == "" || in.PullUser == "" {
		t.Fatal("E2E_KIND_RUNNABLE_BINARY and E2E_KIND_PULL_USER must be set too")
	}
	// The hub's dashboard listens on its Pod's loopback (deploy/hub): a port-forward reaches it.
	url, stop, err := e2e.ForwardHubDashboard(ctx, in.Hub, in.HubNamespace)
	if err != nil {
		t.Fatalf("reaching the hub's dashboard: %v", err)
	}
	t.Cleanup(stop)
	in.DashboardURL = url
	for _, spec := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"PodsRunFromBackup", func(t *testing.T) { e2e.PodsRunFromBackupSpec(ctx, t, in) }},
		{"PodsCoverage", func(t *testing.T) { e2e.PodsCoverageSpec(ctx, t, in) }},
		// Last: it stops the upstream registry (and starts it again when it ends).
		{"UpstreamGone", func(t *testing.T) { e2e.UpstreamGoneSpec(ctx, t, in) }},
	} {
		t.Run(spec.name, spec.run)
	}
}

func docker(ctx context.Context, args ...string) error {
	if out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("docker %v: %w: %s", args, err, out)
	}
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
