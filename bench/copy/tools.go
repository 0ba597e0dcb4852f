package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/image-cloner/image-cloner/pkg/mirror"
)

// concurrency is how many images every tool copies at the same time.
const concurrency = 5

// blobJobs is the per-image blob parallelism given to the tools that take one: image-cloner's
// default (mirror.DefaultJobs) and crane's --jobs. skopeo 1.9 and regctl have no such flag
// and use their own defaults.
const blobJobs = mirror.DefaultJobs

// pair is one image to mirror.
type pair struct{ src, dst string }

// tool copies a list of images; phase is "cold" or "warm".
type tool interface {
	Name() string
	Version() string
	// Copy copies every pair, concurrency at a time, and returns the first error.
	Copy(ctx context.Context, phase string, pairs []pair) error
}

// pool runs fn over pairs with concurrency workers.
func pool(ctx context.Context, pairs []pair, fn func(context.Context, pair) error) error {
	return poolN(ctx, pairs, concurrency, fn)
}

// poolN runs fn over items with n workers, and returns the first error.
func poolN[T any](ctx context.Context, items []T, n int, fn func(context.Context, T) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan T)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for item := range work {
				if err := fn(ctx, item); err != nil {
					once.Do(func() { firstErr = err; cancel() })
				}
			}
		}()
	}
	for _, item := range items {
		select {
		case work <- item:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	return firstErr
}

// imageCloner is pkg/mirror in this process. A new Mirror is made for each phase, as a restarted
// process would: the warm run starts with an empty presence cache, so it finds what is present
// by asking the registries (one HEAD to the source, one to the backup per image), which is what
// the CLI peers must do too. Requests counts its requests by method, from the Observer.
//
// It copies the images' signatures with them (mirror.WithReferrers, the default); with
// noReferrers it is the same engine without, to show what they cost.
type imageCloner struct {
	noReferrers bool
	requests    sync.Map // "phase METHOD host" -> *atomic.Int64
}

func (t *imageCloner) Name() string {
	if t.noReferrers {
		return noReferrersName
	}
	return "image-cloner"
}

// noReferrersName is image-cloner without WithReferrers.
const noReferrersName = "image-cloner-no-referrers"

func (t *imageCloner) Version() string { return "pkg/mirror (this tree)" }

func (t *imageCloner) Copy(ctx context.Context, phase string, pairs []pair) error {
	m, err := mirror.New(mirror.WithReferrers(!t.noReferrers), mirror.WithObserver(mirror.Observer{
		Request: func(method, host string, status int, _ time.Duration) {
			v, _ := t.requests.LoadOrStore(phase+" "+method+" "+host, new(atomic.Int64))
			v.(*atomic.Int64).Add(1)
		},
	}))
	if err != nil {
		return err
	}
	return pool(ctx, pairs, func(ctx context.Context, p pair) error {
		src, err := name.ParseReference(p.src)
		if err != nil {
			return err
		}
		dst, err := name.ParseReference(p.dst)
		if err != nil {
			return err
		}
		if _, err := m.Copy(ctx, src, dst); err != nil {
			return fmt.Errorf("image-cloner: copying %s: %w", p.src, err)
		}
		return nil
	})
}

// cli is a peer tool run as one process per image.
type cli struct {
	name    string
	version string
	// args returns the command line copying src to dst.
	args func(src, dst string) []string
	env  []string
}

func (t *cli) Name() string    { return t.name }
func (t *cli) Version() string { return t.version }

func (t *cli) Copy(ctx context.Context, phase string, pairs []pair) error {
	return pool(ctx, pairs, func(ctx context.Context, p pair) error {
		args := t.args(p.src, p.dst)
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = append(os.Environ(), t.env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s (%s): %w\n%s", t.name, strings.Join(args, " "), err, lastLines(out.String(), 10))
		}
		return nil
	})
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func versionOf(bin string, args ...string) string {
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return strings.TrimSpace(strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0])
}

// peers returns the CLI tools found in toolsDir (crane, regctl) and on PATH (skopeo), and why
// any is missing.
func peers(toolsDir, workDir string, upstream string, backup func() string) ([]tool, map[string]string, error) {
	var ts []tool
	skipped := map[string]string{}

	crane := filepath.Join(toolsDir, "crane")
	if _, err := os.Stat(crane); err == nil {
		ts = append(ts, &cli{
			name: "crane", version: "crane " + versionOf(crane, "version"),
			args: func(src, dst string) []string {
				return []string{crane, "copy", "--insecure", "--jobs", fmt.Sprint(blobJobs), src, dst}
			},
		})
	} else {
		skipped["crane"] = fmt.Sprintf("%s is missing: run hack/bench-tools.sh", crane)
	}

	if skopeo, err := exec.LookPath("skopeo"); err == nil {
		policy := filepath.Join(workDir, "policy.json")
		if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
			return nil, nil, err
		}
		ts = append(ts, &cli{
			name: "skopeo", version: versionOf(skopeo, "--version"),
			args: func(src, dst string) []string {
				return []string{skopeo, "--policy", policy, "copy", "--quiet", "--all", "--preserve-digests",
					"--src-tls-verify=false", "--dest-tls-verify=false", "docker://" + src, "docker://" + dst}
			},
		})
	} else {
		skipped["skopeo"] = "not on PATH (hack/bench-tools.sh installs the Debian package when run as root with apt-get): " + err.Error()
	}

	regctl := filepath.Join(toolsDir, "regctl")
	if _, err := os.Stat(regctl); err == nil {
		// A private configuration directory, so the user's ~/.regctl plays no part.
		home := filepath.Join(workDir, "regctl-home")
		if err := os.MkdirAll(home, 0o755); err != nil {
			return nil, nil, err
		}
		version := "regctl " + strings.TrimSpace(strings.TrimPrefix(versionOf(regctl, "version", "--format", "{{.VCSTag}}"), "VCSTag:"))
		ts = append(ts, &cli{
			name: "regctl", version: version,
			env: []string{"HOME=" + home},
			args: func(src, dst string) []string {
				return []string{regctl, "--host", "reg=" + upstream + ",tls=disabled", "--host", "reg=" + backup() + ",tls=disabled",
					"image", "copy", src, dst}
			},
		})
	} else {
		skipped["regctl"] = fmt.Sprintf("%s is missing: run hack/bench-tools.sh", regctl)
	}
	return ts, skipped, nil
}
