package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// profileKinds are the hub's profiles taken over each window: CPU, and the delta of the block
// and mutex profiles over the window (net/http/pprof's ?seconds=). The hub records blocking and
// contention only when started with --pprof-block-profile-rate and
// --pprof-mutex-profile-fraction (hubProfileArgs).
var profileKinds = []string{"profile", "block", "mutex"}

// hubProfileArgs are the hub's flags that serve its profiles on addr and record every blocking
// event and every contended lock.
func hubProfileArgs(addr string) []string {
	return []string{"--pprof-bind-address", addr, "--pprof-block-profile-rate", "1", "--pprof-mutex-profile-fraction", "1"}
}

// freeAddr returns a 127.0.0.1 address nothing listens on now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port for the hub's profiles: %w", err)
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// profiler saves a process's profiles into dir while a phase of the run lasts, in windows of
// window: CPU, block and mutex over each window and the goroutines at its start, as
// <phase>-<kind>-<n>.pb.gz. A phase longer than one window gives several files of each kind;
// `go tool pprof -top <dir>/converge-profile-*.pb.gz` merges them.
type profiler struct {
	// base is the process's pprof address, e.g. http://127.0.0.1:6060.
	base   string
	dir    string
	window time.Duration
	client *http.Client
}

func newProfiler(addr, dir string, window time.Duration) (*profiler, error) {
	if window < time.Second {
		return nil, fmt.Errorf("profile window %s: at least 1s", window)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the profile directory: %w", err)
	}
	// A CPU profile answers after its window; allow for a loaded machine on top.
	return &profiler{base: "http://" + addr, dir: dir, window: window, client: &http.Client{Timeout: window + time.Minute}}, nil
}

// start profiles phase in windows until stop is called; stop waits for the window under way
// to end (a CPU profile cut short is lost), and returns the files written and the first error.
func (p *profiler) start(phase string) (stop func() ([]string, error)) {
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu    sync.Mutex
		files []string
		errs  []error
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 0; ctx.Err() == nil; n++ {
			var wg sync.WaitGroup
			get := func(kind, query string) {
				defer wg.Done()
				path := filepath.Join(p.dir, fmt.Sprintf("%s-%s-%03d.pb.gz", phase, kind, n))
				err := p.save(path, "/debug/pprof/"+kind+query)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				files = append(files, path)
			}
			seconds := fmt.Sprintf("?seconds=%d", int(p.window.Seconds()))
			wg.Add(len(profileKinds) + 1)
			go get("goroutine", "")
			for _, k := range profileKinds {
				go get(k, seconds)
			}
			wg.Wait()
			mu.Lock()
			failed := len(errs) > 0
			mu.Unlock()
			if failed {
				return
			}
		}
	}()
	return func() ([]string, error) {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return files, errors.Join(errs...)
	}
}

// save writes what path of the process answers into file.
func (p *profiler) save(file, path string) error {
	resp, err := p.client.Get(p.base + path)
	if err != nil {
		return fmt.Errorf("profiling %s: %w", path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("profiling %s: %s: %s", path, resp.Status, body)
	}
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("saving a profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("saving %s: %w", file, err)
	}
	return f.Close()
}
