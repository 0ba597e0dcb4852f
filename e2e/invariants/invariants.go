package invariants

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/internal/testenv"
	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// Member is a member cluster the watcher reads.
type Member struct {
	Name   string
	Config *rest.Config
}

// Registry is how the watcher reaches the backup registry itself (not a proxy in front of it).
type Registry struct {
	// Host is host:port of the registry.
	Host string
	// Auth is nil for an anonymous registry.
	Auth authn.Authenticator
	// Transport reaches it; default http.DefaultTransport.
	Transport http.RoundTripper
}

// Input configures Start.
type Input struct {
	Members []Member
	// BackupRegistry is BACKUP_REGISTRY (host/path) as workloads and ClonedImages name their
	// backups; its host may be a proxy's. References under it are checked in Backup.
	BackupRegistry string
	Backup         Registry
	// Requests returns every request the backup registry has served so far, from its access
	// log (testenv.Registry.Requests); only those served after Start count. Nil skips the
	// copies check.
	Requests func() ([]testenv.Request, error)
	// Grace is how long a workload may stay half patched; default 15s. The agent patches every
	// Ready image of a workload in one update, so a half-patched workload only lasts until the
	// agent hears of the ClonedImage that became Ready.
	Grace time.Duration
	// Settle bounds how long Finish waits for ClonedImages to settle, half-patched workloads
	// to be completed and backup checks to get an answer; default 60s.
	Settle time.Duration
	// MaxCopies is how many copies of one digest are allowed before it is a violation;
	// default 1. A scenario that kills the hub in the middle of a copy may allow 2, and
	// reports Report.ExtraCopies.
	MaxCopies int
	// Logf, optional, is told about each violation as it is found.
	Logf func(format string, args ...any)
}

// Kinds of Violation.
const (
	// IncompleteBackup: a workload or a Ready ClonedImage references a backup whose manifest,
	// a child manifest or a blob is missing from the backup registry.
	IncompleteBackup = "IncompleteBackup"
	// Unverifiable: a backup reference could not be checked before Finish gave up (the
	// registry kept failing).
	Unverifiable = "Unverifiable"
	// HalfPatched: a workload has containers at their backup and others whose image has a
	// Ready ClonedImage still at the source, for longer than Grace.
	HalfPatched = "HalfPatched"
	// AnnotationMismatch: the original-images annotation disagrees with the containers.
	AnnotationMismatch = "AnnotationMismatch"
	// LostClonedImage: a ClonedImage was seen and later was gone.
	LostClonedImage = "LostClonedImage"
	// NotSettled: at Finish, a ClonedImage is neither Ready nor Failed with a reason.
	NotSettled = "NotSettled"
	// CopiedTwice: a digest was pushed to the backup registry more than MaxCopies times.
	CopiedTwice = "CopiedTwice"
)

// Violation is one broken promise.
type Violation struct {
	Kind    string
	Cluster string // empty for the registry
	Object  string // kind namespace/name, or the backup repository@digest
	Detail  string
	At      time.Time
}

func (v Violation) String() string {
	return fmt.Sprintf("%s %s %s: %s", v.Kind, v.Cluster, v.Object, v.Detail)
}

// Report is what the watcher saw.
type Report struct {
	Violations []Violation
	// Copies counts, for each backup repository@digest, the manifest PUTs the backup registry
	// answered with a 2xx status after Start: a PUT by digest counts for that digest, a PUT by
	// tag for the digest the tag names at Finish. A PUT the registry refused, or that never
	// reached it (a reset on the way, a proxy's injected 5xx), is not a copy: it landed
	// nothing. Nil without Input.Requests.
	Copies map[string]int
	// ExtraCopies is the number of copies beyond the first, summed over digests.
	ExtraCopies int
	// ClonedImages is how many distinct ClonedImages were seen; BackupsChecked how many
	// distinct backup references were checked in the registry, DigestsVerified how many
	// digests were checked blob by blob.
	ClonedImages, BackupsChecked, DigestsVerified int
}

// Err returns an error listing the violations, nil when there is none.
func (r *Report) Err() error {
	if len(r.Violations) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d invariant violation(s):", len(r.Violations))
	for _, v := range r.Violations {
		b.WriteString("\n  " + v.String())
	}
	return fmt.Errorf("%s", b.String())
}

// Watcher watches a fleet; Start returns one.
type Watcher struct {
	in      Input
	cancel  context.CancelFunc
	done    sync.WaitGroup
	checker *checker
	start   int // requests served before Start

	mu         sync.Mutex
	startErr   error
	violations []Violation
	reported   map[string]bool           // violation keys already recorded
	workloads  map[string]*workloadState // cluster/kind/ns/name
	cloned     map[string]map[string]*apiv1.ClonedImage
	seenCI     map[string]bool // cluster/name
	halfSince  map[string]time.Time
	checks     map[string]*check // backup reference -> its check
}

// Start starts watching every member; it never blocks on a member that does not answer. Call
// Finish to stop and get the report.
func Start(ctx context.Context, in Input) *Watcher {
	if in.Grace == 0 {
		in.Grace = 15 * time.Second
	}
	if in.Settle == 0 {
		in.Settle = 60 * time.Second
	}
	if in.MaxCopies == 0 {
		in.MaxCopies = 1
	}
	if in.Backup.Transport == nil {
		in.Backup.Transport = http.DefaultTransport
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{
		in: in, cancel: cancel, reported: map[string]bool{},
		workloads: map[string]*workloadState{}, cloned: map[string]map[string]*apiv1.ClonedImage{},
		seenCI: map[string]bool{}, halfSince: map[string]time.Time{}, checks: map[string]*check{},
	}
	w.checker = newChecker(in.Backup, in.BackupRegistry)
	if in.Requests != nil {
		reqs, err := in.Requests()
		if err != nil {
			w.startErr = fmt.Errorf("reading the backup registry's requests: %w", err)
		}
		w.start = len(reqs)
	}
	for _, m := range in.Members {
		w.cloned[m.Name] = map[string]*apiv1.ClonedImage{}
		c, err := client.NewWithWatch(m.Config, client.Options{Scheme: testenv.Scheme()})
		if err != nil {
			w.startErr = fmt.Errorf("client for %s: %w", m.Name, err)
			continue
		}
		for _, k := range watchedKinds() {
			w.done.Add(1)
			go func() {
				defer w.done.Done()
				w.watchLoop(ctx, m.Name, c, k)
			}()
		}
	}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				w.evaluate(time.Now(), false)
			}
		}
	}()
	return w
}

// Violations returns the violations found so far.
func (w *Watcher) Violations() []Violation {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Violation(nil), w.violations...)
}

// violate records a violation once per key.
func (w *Watcher) violate(key string, v Violation) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.violateLocked(key, v)
}

func (w *Watcher) violateLocked(key string, v Violation) {
	if w.reported[key] {
		return
	}
	w.reported[key] = true
	if v.At.IsZero() {
		v.At = time.Now()
	}
	w.violations = append(w.violations, v)
	if w.in.Logf != nil {
		w.in.Logf("invariants: violation: %s", v)
	}
}

// Finish waits (up to Input.Settle) for the fleet to settle, stops watching, runs the checks
// made at the end and returns the report. The error is about the watcher itself (a registry
// that could not be read); violations are in the report.
func (w *Watcher) Finish(ctx context.Context) (*Report, error) {
	_ = testenv.WaitFor(ctx, w.in.Settle, func(context.Context) (bool, error) {
		return w.settled(), nil
	})
	w.cancel()
	w.done.Wait()
	w.evaluate(time.Now(), true)
	w.finalChecks()

	r := &Report{}
	var err error
	if w.in.Requests != nil {
		r.Copies, err = w.copies(ctx)
		keys := make([]string, 0, len(r.Copies))
		for k := range r.Copies {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			n := r.Copies[k]
			r.ExtraCopies += n - 1
			if n > w.in.MaxCopies {
				w.violate("copies/"+k, Violation{Kind: CopiedTwice, Object: k,
					Detail: fmt.Sprintf("pushed %d times (at most %d allowed)", n, w.in.MaxCopies)})
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	r.Violations = append([]Violation(nil), w.violations...)
	r.ClonedImages = len(w.seenCI)
	r.BackupsChecked = len(w.checks)
	r.DigestsVerified = w.checker.verifiedCount()
	if w.startErr != nil && err == nil {
		err = w.startErr
	}
	return r, err
}

// settled: every ClonedImage Ready or Failed with a reason, no check waiting for an answer,
// no workload half patched.
func (w *Watcher) settled() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, cis := range w.cloned {
		for _, ci := range cis {
			if !isSettled(ci) {
				return false
			}
		}
	}
	for _, c := range w.checks {
		if !c.finished() {
			return false
		}
	}
	return len(w.halfSince) == 0
}

func isSettled(ci *apiv1.ClonedImage) bool {
	switch ci.Status.Phase {
	case apiv1.PhaseReady:
		return true
	case apiv1.PhaseFailed:
		for _, c := range ci.Status.Conditions {
			if c.Type == apiv1.ReadyCondition && c.Reason != "" {
				return true
			}
		}
	}
	return false
}

// finalChecks records what is still wrong at the end: unsettled ClonedImages and backup
// references that could not be checked.
func (w *Watcher) finalChecks() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for cluster, cis := range w.cloned {
		for name, ci := range cis {
			if !isSettled(ci) {
				w.violateLocked("settle/"+cluster+"/"+name, Violation{Kind: NotSettled, Cluster: cluster,
					Object: "ClonedImage " + name,
					Detail: fmt.Sprintf("phase %q at the end, want Ready or Failed with a reason", ci.Status.Phase)})
			}
		}
	}
	for ref, c := range w.checks {
		c.stop()
		if !c.finished() {
			w.violateLocked("unverified/"+ref, Violation{Kind: Unverifiable, Cluster: c.cluster, Object: c.object,
				Detail: fmt.Sprintf("backup %s could not be checked: %v", ref, c.lastErr())})
		}
	}
}

// SeenClonedImage reports whether the watcher has seen the ClonedImage name in cluster.
func (w *Watcher) SeenClonedImage(cluster, name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seenCI[cluster+"/"+name]
}
