package main

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
)

// scope is the testing.TB that internal/testenv wants, for a program: it runs cleanups when closed
// (so a backup registry and its storage go away after each tool's run) and turns Fatalf into a
// panic that main reports. Only the methods testenv calls are implemented; the embedded nil
// interface supplies the unexported method of testing.TB.
type scope struct {
	testing.TB
	name string

	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

type fatal struct{ msg string }

func newScope(name string) *scope { return &scope{name: name} }

func (s *scope) Name() string { return s.name }
func (s *scope) Helper()      {}

func (s *scope) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

func (s *scope) TempDir() string {
	dir, err := os.MkdirTemp("", "image-cloner-bench-")
	if err != nil {
		s.Fatalf("creating a temporary directory: %v", err)
	}
	s.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func (s *scope) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

func (s *scope) Log(args ...any)                 { fmt.Fprintln(os.Stderr, args...) }
func (s *scope) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

func (s *scope) Errorf(format string, args ...any) {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
	s.Logf(format, args...)
}

func (s *scope) Fatalf(format string, args ...any) {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
	panic(fatal{msg: fmt.Sprintf(format, args...)})
}

func (s *scope) Fatal(args ...any) { s.Fatalf("%s", fmt.Sprint(args...)) }

// Close runs the cleanups, last registered first.
func (s *scope) Close() {
	s.mu.Lock()
	cs := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
	runtime.GC()
}
