package dashboard

import (
	"context"
	"net/http"
	"time"

	"github.com/image-cloner/image-cloner/hub/internal/images"
)

// CoverageView is /api/v1/coverage and what the coverage page and the overview's coverage card
// show: per member, its running containers by where their image comes from
// (images.ContainerState), the fleet's sums, and what could not be counted.
type CoverageView struct {
	Time     time.Time         `json:"time"`
	Clusters []images.Coverage `json:"clusters"`
	// Fleet sums Clusters' containers by state.
	Fleet map[images.ContainerState]int `json:"fleet"`
	// Error names the members whose cache could not be read; they are left out of Clusters.
	Error string `json:"error,omitempty"`
}

// coverageTimeout bounds one computation of the figure: it reads member caches, which answer
// at once, unless a cache is not synced yet.
const coverageTimeout = 10 * time.Second

func (d *Dashboard) coverageView(ctx context.Context) CoverageView {
	ctx, cancel := context.WithTimeout(ctx, coverageTimeout)
	defer cancel()
	cov, err := d.o.Coverage(ctx)
	v := CoverageView{Time: time.Now(), Clusters: cov, Fleet: map[images.ContainerState]int{}}
	if v.Clusters == nil {
		v.Clusters = []images.Coverage{}
	}
	for _, c := range v.Clusters {
		for state, n := range c.Containers {
			v.Fleet[state] += n
		}
	}
	if err != nil {
		v.Error = err.Error()
	}
	return v
}

func (d *Dashboard) coverage(w http.ResponseWriter, r *http.Request) {
	if d.o.Coverage == nil {
		http.NotFound(w, r)
		return
	}
	writeJSON(w, d.coverageView(r.Context()))
}

// CoverageRow is one line of the coverage page: a member, or the fleet's sum (Cluster "").
type CoverageRow struct {
	Cluster string
	// Running counts the running containers; Backup those that run a backup.
	Running, Backup int
	// Upstream counts the others by state, in images.ContainerStates' order, zeros included.
	Upstream []StateCount
	// Failed counts the failed ones by their ClonedImage's Ready reason.
	Failed map[string]int
}

// StateCount is a number of containers in one state.
type StateCount struct {
	State images.ContainerState
	N     int
}

// Share is the share of Running that runs a backup, 0 to 1; 1 when nothing runs.
func (r CoverageRow) Share() float64 {
	if r.Running == 0 {
		return 1
	}
	return float64(r.Backup) / float64(r.Running)
}

// FromUpstream is Running less Backup.
func (r CoverageRow) FromUpstream() int { return r.Running - r.Backup }

// Rows returns the view as the coverage page's lines: one per member, then the fleet's.
func (v CoverageView) Rows() []CoverageRow {
	rows := make([]CoverageRow, 0, len(v.Clusters))
	for _, c := range v.Clusters {
		rows = append(rows, row(c.Cluster, c.Containers, c.Failed))
	}
	return rows
}

// Total is the fleet's line.
func (v CoverageView) Total() CoverageRow {
	failed := map[string]int{}
	for _, c := range v.Clusters {
		for reason, n := range c.Failed {
			failed[reason] += n
		}
	}
	return row("", v.Fleet, failed)
}

func row(cluster string, containers map[images.ContainerState]int, failed map[string]int) CoverageRow {
	r := CoverageRow{Cluster: cluster, Backup: containers[images.FromBackup], Failed: failed}
	for _, state := range images.ContainerStates {
		r.Running += containers[state]
		if state != images.FromBackup {
			r.Upstream = append(r.Upstream, StateCount{State: state, N: containers[state]})
		}
	}
	return r
}

// stateLabels say what each upstream state means, as the coverage page's column heads and
// legend put it.
var stateLabels = map[images.ContainerState][2]string{
	images.NotCopiedYet:      {"not copied yet", "the image has no Ready backup yet"},
	images.CopyFailed:        {"copy failed", "the image's ClonedImage is Failed: its reason is listed"},
	images.IgnoredByRule:     {"ignored by a rule", "IMAGES_TO_IGNORE or REGISTRIES_TO_IGNORE"},
	images.NamespaceIgnored:  {"namespace ignored", "NAMESPACES_TO_IGNORE, kube-system or image-cloner's own"},
	images.OptedOut:          {"opted out", "the Pod or its workload has the opt-out label"},
	images.OwnerNotPatchable: {"owner not patchable", "a bare Pod, a Job's or a custom resource's: only REWRITE_MODE pod or auto rewrites it, when it is next created"},
	images.NotPatchedYet:     {"not patched yet", "the backup is Ready; the agent has not pointed the workload at it yet, or the Pod predates the patch"},
}
