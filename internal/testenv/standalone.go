package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// T is what the harness needs from its caller: testing.TB in tests, Standalone in programs
// (the demo, benchmarks) that start the same components outside `go test`.
type T interface {
	Helper()
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
	Failed() bool
	Name() string
}

// Standalone returns a T for a program, and the function that tears down everything started
// with it. Logf writes to stderr; Fatalf logs, runs the cleanups and exits with status 1;
// cleanups run in LIFO order, as in tests; TempDir directories live under one root removed at
// the end; Failed is false (component logs are kept on Fatalf: it sets Failed before cleaning up).
// The returned function is safe to call more than once.
func Standalone(name string) (T, func()) {
	s := &standalone{name: name}
	return s, s.close
}

type standalone struct {
	name string

	mu       sync.Mutex
	cleanups []func()
	root     string
	dirs     int
	failed   bool
	closed   bool
}

func (s *standalone) Helper()      {}
func (s *standalone) Name() string { return s.name }

func (s *standalone) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

func (s *standalone) Fatalf(format string, args ...any) {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
	s.Logf(format, args...)
	s.close()
	os.Exit(1)
}

func (s *standalone) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

func (s *standalone) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *standalone) TempDir() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root == "" {
		root, err := os.MkdirTemp("", sanitize(s.name)+"-")
		if err != nil {
			s.mu.Unlock()
			s.Fatalf("creating temporary directory: %v", err)
		}
		s.root = root
	}
	s.dirs++
	dir := filepath.Join(s.root, strconv.Itoa(s.dirs))
	if err := os.Mkdir(dir, 0o700); err != nil {
		s.mu.Unlock()
		s.Fatalf("creating temporary directory: %v", err)
	}
	return dir
}

// close runs the cleanups, last registered first, then removes the temporary directories.
func (s *standalone) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	for {
		s.mu.Lock()
		n := len(s.cleanups)
		if n == 0 {
			s.mu.Unlock()
			break
		}
		f := s.cleanups[n-1]
		s.cleanups = s.cleanups[:n-1]
		s.mu.Unlock()
		f()
	}
	s.mu.Lock()
	root := s.root
	s.mu.Unlock()
	if root != "" {
		_ = os.RemoveAll(root)
	}
}
