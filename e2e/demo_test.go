//go:build e2e

package e2e_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/image-cloner/image-cloner/e2e/env"
	"github.com/image-cloner/image-cloner/internal/testenv"
)

// TestDemo_exitWhenReady runs the demo program as `make demo` would, with -exit-when-ready:
// it prints one dashboard (or metrics) line and one kubeconfig line per cluster, reaches
// ready, exits 0, and leaves none of the processes it started running.
func TestDemo_exitWhenReady(t *testing.T) {
	runDemo(t, "-exit-when-ready", "-timeout", "5m")
}

// TestDemo_interruptStopsEverything: SIGINT (Ctrl-C) once the demo is ready stops it with
// status 0 and leaves none of its processes running.
func TestDemo_interruptStopsEverything(t *testing.T) {
	runDemo(t)
}

func runDemo(t *testing.T, args ...string) {
	bin := t.TempDir()
	if err := env.Build(bin); err != nil {
		t.Fatal(err)
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "demo"), "./hack/demo")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the demo: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "demo")
	interactive := len(args) == 0
	cmd := exec.Command(filepath.Join(bin, "demo"), append([]string{"-bin", bin, "-dir", dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("demo stderr:\n%s", stderr.String())
		}
	})

	var urls []string
	kubeconfigs := map[string]string{}
	var descendants []int
	ready, readyAfter := false, time.Duration(0)
	kubeconfigLine := regexp.MustCompile(`^kubeconfig (\S+): (\S+)$`)
	deadline := time.After(6 * time.Minute)
read:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				break read
			}
			switch {
			case strings.HasPrefix(line, "dashboard: http://"), strings.HasPrefix(line, "metrics: http://"):
				urls = append(urls, line)
			case kubeconfigLine.MatchString(line):
				m := kubeconfigLine.FindStringSubmatch(line)
				kubeconfigs[m[1]] = m[2]
				if m[1] == "member-2" {
					// Everything is started before the kubeconfigs are printed.
					descendants = descendantsOf(cmd.Process.Pid)
				}
			case strings.HasPrefix(line, "ready: "):
				ready, readyAfter = true, time.Since(start)
				t.Logf("demo %s (%s since start)", line, time.Since(start).Round(100*time.Millisecond))
				if interactive {
					if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
						t.Fatal(err)
					}
				}
			}
		case <-deadline:
			t.Fatal("the demo did not finish within 6 minutes")
		}
	}
	if err := <-exited; err != nil {
		t.Fatalf("demo exited with %v", err)
	}
	if len(urls) != 1 {
		t.Errorf("want exactly one dashboard: or metrics: line, got %q", urls)
	}
	for _, c := range []string{"hub", "member-1", "member-2"} {
		p, ok := kubeconfigs[c]
		if !ok {
			t.Errorf("no `kubeconfig %s: PATH` line", c)
			continue
		}
		if data, err := os.ReadFile(p); err != nil || !bytes.Contains(data, []byte("server: https://127.0.0.1:")) {
			t.Errorf("kubeconfig %s at %s is not a kubeconfig (%v)", c, p, err)
		}
	}
	if !ready {
		t.Error("the demo never printed its ready: line")
	}
	// The hub, two agents, three kube-apiservers, three etcds and two registries.
	if len(descendants) < 11 {
		t.Errorf("want at least 11 processes started by the demo, found %d: %v", len(descendants), descendants)
	}
	var left []string
	for _, pid := range descendants {
		if alive(pid) {
			cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			left = append(left, strconv.Itoa(pid)+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	if len(left) > 0 {
		t.Errorf("processes left running after the demo exited:\n%s", strings.Join(left, "\n"))
	}
	testenv.Report(t, "demo %v: ready %s after start (control planes, registries, processes, copies, patches), exited %s after start",
		args, readyAfter.Round(100*time.Millisecond), time.Since(start).Round(100*time.Millisecond))
}

// descendantsOf returns every process below pid, from /proc.
func descendantsOf(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, _, ok := stat(p); ok {
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// alive says pid exists and is not a zombie (an orphan's zombie waits for a reaper, it runs no more).
func alive(pid int) bool {
	_, state, ok := stat(pid)
	return ok && state != "Z" && state != "X"
}

// stat returns a process's parent and state from /proc/<pid>/stat.
func stat(pid int) (ppid int, state string, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	rest := string(data[bytes.LastIndexByte(data, ')')+1:])
	f := strings.Fields(rest)
	if len(f) < 2 {
		return 0, "", false
	}
	ppid, _ = strconv.Atoi(f[1])
	return ppid, f[0], true
}
