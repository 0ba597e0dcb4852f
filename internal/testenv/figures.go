package testenv

import (
	"fmt"
	"os"
)

// FiguresEnv names the file that Report appends figures to. `make test` points it at a
// temporary file and prints it at the end; unset, figures go to the test log only, so a test
// run never writes into the repository.
const FiguresEnv = "IMAGE_CLONER_FIGURES"

// Report records a measured figure: in the test log and, when FiguresEnv names a file, appended
// to it. Figures are printed, never asserted: a wall-clock bound in a test fails on a busy
// machine and proves nothing on an idle one.
func Report(t T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Logf("%s", line)
	path := os.Getenv(FiguresEnv)
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Logf("recording the figure in %s: %v", path, err)
		return
	}
	defer func() { _ = f.Close() }()
	if _, err := fmt.Fprintln(f, line); err != nil {
		t.Logf("recording the figure in %s: %v", path, err)
	}
}
