package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// coverageFigure is one member's entry in the hub's /api/v1/coverage: its running containers
// by where their image comes from. It mirrors hub/internal/images.Coverage, which e2e cannot
// import (internal to hub/); decoding the JSON is also what a user of the API does.
type coverageFigure struct {
	Cluster    string         `json:"cluster"`
	Containers map[string]int `json:"containers"`
}

// stateBackup is the state of a container that runs a backup (images.FromBackup).
const stateBackup = "backup"

// total is the number of running containers the figure counts, in every state.
func (f coverageFigure) total() int {
	n := 0
	for _, c := range f.Containers {
		n += c
	}
	return n
}

// hubCoverage reads the coverage figure of member from the hub's dashboard at dashboardURL
// (http://host:port/), one GET of /api/v1/coverage bounded by 10s.
func hubCoverage(ctx context.Context, dashboardURL, member string) (coverageFigure, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := strings.TrimSuffix(dashboardURL, "/") + "/api/v1/coverage"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return coverageFigure{}, fmt.Errorf("coverage request: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return coverageFigure{}, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return coverageFigure{}, fmt.Errorf("reading GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return coverageFigure{}, fmt.Errorf("GET %s: %s: %s", u, resp.Status, body)
	}
	var view struct {
		Clusters []coverageFigure `json:"clusters"`
		Error    string           `json:"error"`
	}
	if err := json.Unmarshal(body, &view); err != nil {
		return coverageFigure{}, fmt.Errorf("decoding GET %s: %w", u, err)
	}
	for _, c := range view.Clusters {
		if c.Cluster == member {
			return c, nil
		}
	}
	return coverageFigure{}, fmt.Errorf("GET %s: no figure for cluster %s (error %q)", u, member, view.Error)
}

// podCount is the coverage of a member as its Pods' status shows it, counted without the hub.
type podCount struct {
	// Total counts the running containers (init, regular, ephemeral) of the Running Pods, what
	// the hub's figure counts in all its states.
	Total int
	// FromBackup counts those whose image is a backup in the backup registry (a ClonedImage's
	// status.backup, by tag or pinned to its digest) and whose status.imageID has that
	// ClonedImage's digest: what the node really started.
	FromBackup int
	// Unmatched says, for each running container whose image is under the backup registry but
	// that is not counted in FromBackup, why.
	Unmatched []string
}

// countCoverage counts pods' running containers as podCount says. backupRegistry is
// BACKUP_REGISTRY (host/path); images are the member's ClonedImages.
//
// The digest is compared, not the repository of status.imageID: containerd reports the first
// repository it stored the content under, which is upstream when an unpatched Pod pulled the
// same image on that node first (see runsFrom).
func countCoverage(pods []corev1.Pod, images []v1alpha1.ClonedImage, backupRegistry string) podCount {
	var n podCount
	for i := range pods {
		p := &pods[i]
		if p.Status.Phase != corev1.PodRunning {
			continue
		}
		spec := map[string]string{}
		for _, r := range workload.Refs(&p.Spec) {
			spec[r.Container] = r.Image
		}
		statuses := slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses, p.Status.EphemeralContainerStatuses)
		for _, s := range statuses {
			if s.State.Running == nil {
				continue
			}
			n.Total++
			image := spec[s.Name]
			if image == "" {
				image = s.Image
			}
			if !strings.HasPrefix(image, backupRegistry+"/") {
				continue
			}
			where := p.Namespace + "/" + p.Name + " container " + s.Name
			ci := backupFor(images, image)
			switch {
			case ci == nil:
				n.Unmatched = append(n.Unmatched, fmt.Sprintf("%s runs %s, no ClonedImage's backup", where, image))
			case digestOf(s.ImageID) != ci.Status.Digest:
				n.Unmatched = append(n.Unmatched, fmt.Sprintf("%s runs %s as imageID %s, not the backup's digest %s", where, image, s.ImageID, ci.Status.Digest))
			default:
				n.FromBackup++
			}
		}
	}
	return n
}

// backupFor returns the ClonedImage of which image is the backup, or nil.
func backupFor(images []v1alpha1.ClonedImage, image string) *v1alpha1.ClonedImage {
	for i := range images {
		if images[i].Status.Backup != "" && isBackupOf(image, &images[i]) == "" {
			return &images[i]
		}
	}
	return nil
}

// digestOf returns the digest of an imageID (repo@sha256:..., or sha256:... alone).
func digestOf(imageID string) string {
	if i := strings.LastIndex(imageID, "@"); i >= 0 {
		return imageID[i+1:]
	}
	return imageID
}

// coverageMismatch says where the hub's figure disagrees with what the Pods show, or "": the
// hub's backup count must be the Pods' FromBackup, and its total theirs.
func coverageMismatch(hub coverageFigure, pods podCount) string {
	var why []string
	if got := hub.Containers[stateBackup]; got != pods.FromBackup {
		why = append(why, fmt.Sprintf("the hub counts %d containers from backups, the Pods show %d", got, pods.FromBackup))
	}
	if got := hub.total(); got != pods.Total {
		why = append(why, fmt.Sprintf("the hub counts %d running containers, the Pods show %d", got, pods.Total))
	}
	if len(why) == 0 {
		return ""
	}
	return fmt.Sprintf("%s: %s (hub: %v; not from a backup though under the backup registry: %v)",
		hub.Cluster, strings.Join(why, "; "), hub.Containers, pods.Unmatched)
}
