//go:build e2e

package reliability

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/image-cloner/image-cloner/internal/testenv"
)

// stopAPIServer takes c's kube-apiserver away the way a crash does, and fast: envtest's Stop
// sends SIGTERM, and kube-apiserver stops listening at once but then waits up to a minute for
// open watches (the hub's, the agent's) to end before it exits; once it no longer listens,
// this SIGKILLs it, so Stop returns and StartAPIServer can start it again.
func stopAPIServer(ctx context.Context, c *testenv.Cluster) error {
	u, err := url.Parse(c.Config.Host)
	if err != nil {
		return fmt.Errorf("parsing the API server's address: %w", err)
	}
	pid, err := apiserverPid(u.Port())
	if err != nil {
		return err
	}
	stopped := make(chan error, 1)
	go func() { stopped <- c.StopAPIServer() }()
	err = testenv.WaitFor(ctx, time.Minute, func(ctx context.Context) (bool, error) {
		conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return true, nil
		}
		_ = conn.Close()
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("the API server of %s still listens: %w", c.Name, err)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	return <-stopped
}

// apiserverPid finds the kube-apiserver serving on port among this machine's processes, from
// its command line (--secure-port=PORT, as envtest starts it).
func apiserverPid(port string) (int, error) {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	want := []byte("--secure-port=" + port + "\x00")
	for _, p := range cmdlines {
		data, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(data, []byte("kube-apiserver")) || !bytes.Contains(data, want) {
			continue
		}
		return strconv.Atoi(filepath.Base(filepath.Dir(p)))
	}
	return 0, fmt.Errorf("no kube-apiserver process with --secure-port=%s", port)
}
