package env

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process is a hub or agent process, its output appended to LogPath.
type Process struct {
	Name    string
	LogPath string

	spec   processSpec
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// processSpec is how to start a process, kept so that Env.Restart starts the same again.
type processSpec struct {
	name, logPath string
	bin           string
	args, environ []string
	// probe and metrics are the host:port of its /readyz and /metrics.
	probe, metrics string
}

// startProcess starts spec.bin with its args and environ added to the environment, its
// stdout and stderr written to logPath (appended to when appendLog is true).
func startProcess(spec processSpec, appendLog bool) (*Process, error) {
	name := spec.name
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendLog {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	logf, err := os.OpenFile(spec.logPath, flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("creating log file of %s: %w", name, err)
	}
	cmd := exec.Command(spec.bin, spec.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), spec.environ...)
	// Its own process group: a Ctrl-C in the terminal reaches the demo, which stops the
	// processes in order, not every process at once. Pdeathsig: die with the demo or test
	// even if it is killed before it can clean up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: spec.logPath, spec: spec, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// MetricsURL is the process's Prometheus endpoint.
func (p *Process) MetricsURL() string { return "http://" + p.spec.metrics + "/metrics" }

// Kill sends SIGKILL, as a crashing node or the OOM killer would: no shutdown, no lease
// released, requests in flight cut. It returns once the process has exited.
func (p *Process) Kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Stop sends SIGTERM, waits up to 20 seconds for a clean exit, then kills the process. It
// returns the exit error of a process that did not exit cleanly.
func (p *Process) Stop() error {
	select {
	case <-p.exited:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not exit within 20s of SIGTERM: killed", p.Name)
	}
}
