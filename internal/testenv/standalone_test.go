package testenv_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/image-cloner/image-cloner/internal/testenv"
)

var _ testenv.T = testing.TB(nil) // testing.TB satisfies T

func TestStandalone_runsCleanupsLIFOAndRemovesTempDirs(t *testing.T) {
	s, done := testenv.Standalone("demo/one")
	var order []int
	for i := range 3 {
		s.Cleanup(func() { order = append(order, i) })
	}
	a, b := s.TempDir(), s.TempDir()
	if a == b {
		t.Fatalf("TempDir returned %s twice", a)
	}
	if err := os.WriteFile(filepath.Join(a, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s.Failed() || s.Name() != "demo/one" {
		t.Fatalf("Failed() = %v, Name() = %q", s.Failed(), s.Name())
	}
	done()
	done() // idempotent
	if !slices.Equal(order, []int{2, 1, 0}) {
		t.Fatalf("cleanups ran in order %v, want [2 1 0] exactly once", order)
	}
	for _, d := range []string{a, b, filepath.Dir(a)} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s still exists after the cleanups (err %v)", d, err)
		}
	}
}

// TestStandalone_fatalfCleansUpAndExits re-runs the test binary as a program calling Fatalf.
func TestStandalone_fatalfCleansUpAndExits(t *testing.T) {
	if os.Getenv("STANDALONE_FATAL") == "1" {
		s, _ := testenv.Standalone("fatal")
		s.Cleanup(func() { os.Stderr.WriteString("cleanup ran\n") })
		s.Fatalf("boom %d", 42)
		os.Stderr.WriteString("Fatalf returned\n")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestStandalone_fatalfCleansUpAndExits$")
	cmd.Env = append(os.Environ(), "STANDALONE_FATAL=1")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit status 1, got %v:\n%s", err, out)
	}
	if !strings.Contains(string(out), "boom 42\ncleanup ran\n") || strings.Contains(string(out), "Fatalf returned") {
		t.Fatalf("want the message, then the cleanup, then exit:\n%s", out)
	}
}
