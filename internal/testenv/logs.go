package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// logFile creates a file for a component's output in a directory that outlives the test's own
// temporary directories, and registers a cleanup that prints its last lines if the test failed.
// Files land under $ARTIFACTS (when set, so CI can keep them) or the system temp directory.
func logFile(t T, component string) (*os.File, string) {
	t.Helper()
	base := os.Getenv("ARTIFACTS")
	if base == "" {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "image-cloner-test-logs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("creating log directory: %v", err)
	}
	f, err := os.CreateTemp(dir, sanitize(t.Name())+"-"+component+"-*.log")
	if err != nil {
		t.Fatalf("creating log file for %s: %v", component, err)
	}
	path := f.Name()
	t.Cleanup(func() {
		_ = f.Close()
		if t.Failed() {
			t.Logf("last lines of %s log (%s):\n%s", component, path, tail(path, 40))
			return
		}
		_ = os.Remove(path)
	})
	return f, path
}

func sanitize(s string) string {
	return strings.NewReplacer("/", "_", " ", "_", ":", "_").Replace(s)
}

// tail returns the last n lines of a file, or a note saying why it could not be read.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	defer func() { _ = f.Close() }()
	var lines []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		lines = append(lines, s.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// freePort asks the kernel for a free TCP port on 127.0.0.1. Another process may take it before
// the caller binds it; callers retry on a bind failure.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
