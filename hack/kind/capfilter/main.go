// Command capfilter is an OCI runtime that wraps runc for a Docker engine that hack/kind/docker.sh
// starts where the process's capability bounding set lacks some capability (a sandbox without
// CAP_SYS_RESOURCE, for one). Docker 20.10 gives a --privileged container every capability the
// kernel knows, and runc then fails with "unable to apply caps: operation not permitted"
// (https://github.com/moby/moby/issues/42906, fixed in later Docker releases). Before exec'ing
// runc, capfilter removes every capability that is not in its own bounding set from the bundle's
// config.json (create, run) and from the --process file of `runc exec`, so privileged containers
// start with every capability this machine has. Everything else goes to runc unchanged.
//
// A machine whose Docker engine already runs privileged containers needs none of this.
package main

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// capNames are the kernel's capabilities by number (include/uapi/linux/capability.h).
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

func main() {
	runc := os.Getenv("CAPFILTER_RUNC")
	if runc == "" {
		runc = "runc"
	}
	path, err := exec.LookPath(runc)
	if err != nil {
		fail(fmt.Errorf("finding runc (set CAPFILTER_RUNC to its path): %w", err))
	}
	args := os.Args[1:]
	allowed, err := boundingSet()
	if err != nil {
		fail(err)
	}
	for _, f := range specFiles(args) {
		if err := filterFile(f, allowed); err != nil {
			fail(err)
		}
	}
	if err := syscall.Exec(path, append([]string{path}, args...), os.Environ()); err != nil {
		fail(fmt.Errorf("exec %s: %w", path, err))
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "capfilter: %v\n", err)
	os.Exit(1)
}

// boundingSet returns the names of the capabilities in this process's bounding set.
func boundingSet() (map[string]bool, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return nil, fmt.Errorf("parsing CapBnd %q: %w", v, err)
			}
			set := map[string]bool{}
			for i, n := range capNames {
				if mask&(1<<i) != 0 {
					set[n] = true
				}
			}
			if bits.OnesCount64(mask) > len(set) {
				// A capability newer than capNames: the kernel has it, so keep names we do not know.
				set["*"] = true
			}
			return set, nil
		}
	}
	return nil, fmt.Errorf("no CapBnd line in /proc/self/status")
}

// specFiles returns the files runc will read capabilities from for this command line: the
// bundle's config.json for create and run, the --process file for exec.
func specFiles(args []string) []string {
	cmd, bundle, process := "", "", ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		value := func() string {
			if _, v, ok := strings.Cut(a, "="); ok {
				return v
			}
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		switch {
		case a == "--bundle" || a == "-b" || strings.HasPrefix(a, "--bundle="):
			bundle = value()
		case a == "--process" || a == "-p" || strings.HasPrefix(a, "--process="):
			process = value()
		case cmd == "" && !strings.HasPrefix(a, "-"):
			cmd = a
		case cmd == "" && (a == "--root" || a == "--log" || a == "--log-format" || a == "--criu" || a == "--rootless"):
			i++ // a global flag's value is not the command
		}
	}
	switch cmd {
	case "create", "run":
		if bundle == "" {
			bundle = "."
		}
		return []string{filepath.Join(bundle, "config.json")}
	case "exec":
		if process != "" {
			return []string{process}
		}
	}
	return nil
}

// filterFile drops the capabilities not in allowed from an OCI spec (config.json, whose
// capabilities are under process) or process file (capabilities at the top level).
func filterFile(path string, allowed map[string]bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("parsing %s: %w", path, err)
	}
	holder := doc
	if p, ok := doc["process"].(map[string]any); ok {
		holder = p
	}
	caps, ok := holder["capabilities"].(map[string]any)
	if !ok {
		return nil
	}
	changed := false
	for set, v := range caps {
		list, ok := v.([]any)
		if !ok {
			continue
		}
		kept := make([]any, 0, len(list))
		for _, c := range list {
			n, _ := c.(string)
			if allowed[n] || (allowed["*"] && !known(n)) {
				kept = append(kept, c)
			}
		}
		if len(kept) != len(list) {
			caps[set] = kept
			changed = true
		}
	}
	if !changed {
		return nil
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, info.Mode().Perm())
}

func known(name string) bool {
	for _, n := range capNames {
		if n == name {
			return true
		}
	}
	return false
}
