package testenv

import (
	"fmt"
	"os"
	"path/filepath"
)

// Report records a measured figure: in the test log and appended to artifacts/figures.txt,
// which `make test` prints at the end. Figures are printed, never asserted: a wall-clock bound
// in a test fails on a busy machine and proves nothing on an idle one.
func Report(t T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Logf("%s", line)
	root, err := RepoRoot()
	if err != nil {
		return
	}
	dir := filepath.Join(root, "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	f, err := os.OpenFile(filepath.Join(dir, "figures.txt"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer func() { _ = f.Close() }()
	_, _ = fmt.Fprintln(f, line)
}
