package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

const (
	testRegistry = "10.0.0.5:5000/backup"
	testDigest   = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	otherDigest  = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	testBackup   = testRegistry + "/10.0.0.4-5000_e2e_run__abcd:v1"
	testUpstream = "10.0.0.4:5000/e2e/run:v1"
)

var testImages = []v1alpha1.ClonedImage{{
	Spec:   v1alpha1.ClonedImageSpec{Source: testUpstream},
	Status: v1alpha1.ClonedImageStatus{Backup: testBackup, Digest: testDigest, Phase: v1alpha1.PhaseReady},
}}

// runningPod is a Running Pod whose container c0 runs image, started from imageID.
func runningPod(name, image, imageID string) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c0", Image: image}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "c0", Image: image, ImageID: imageID,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
		}}},
	}
}

func TestCountCoverage_countsWhatNodesStarted(t *testing.T) {
	pinned := testBackup + "@" + testDigest
	waiting := runningPod("waiting", pinned, "")
	waiting.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}
	pending := runningPod("pending", pinned, testBackup+"@"+testDigest)
	pending.Status.Phase = corev1.PodPending
	sidecar := runningPod("sidecar", testUpstream, "10.0.0.4:5000/e2e/run@"+testDigest)
	sidecar.Spec.InitContainers = []corev1.Container{{Name: "init", Image: pinned}}
	sidecar.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "init", Image: pinned, ImageID: "docker.io/x@" + testDigest,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	for _, tc := range []struct {
		name            string
		pods            []corev1.Pod
		total, fromBack int
		unmatched       int
	}{
		{"pinned backup with its digest", []corev1.Pod{runningPod("a", pinned, "10.0.0.5:5000/backup/x@"+testDigest)}, 1, 1, 0},
		{"backup by tag", []corev1.Pod{runningPod("a", testBackup, testBackup+"@"+testDigest)}, 1, 1, 0},
		// containerd names the first repository it stored the content under.
		{"imageID under upstream, same digest", []corev1.Pod{runningPod("a", pinned, "10.0.0.4:5000/e2e/run@"+testDigest)}, 1, 1, 0},
		{"another digest under the backup's name", []corev1.Pod{runningPod("a", pinned, testBackup+"@"+otherDigest)}, 1, 0, 1},
		{"under the backup registry, no ClonedImage's", []corev1.Pod{runningPod("a", testRegistry+"/other:v1", testRegistry+"/other@"+testDigest)}, 1, 0, 1},
		{"upstream", []corev1.Pod{runningPod("a", testUpstream, "10.0.0.4:5000/e2e/run@"+testDigest)}, 1, 0, 0},
		{"not running", []corev1.Pod{waiting, pending}, 0, 0, 0},
		{"a running init container (native sidecar)", []corev1.Pod{sidecar}, 2, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := gomega.NewWithT(t)
			got := countCoverage(tc.pods, testImages, testRegistry)
			g.Expect(got.Total).To(gomega.Equal(tc.total), "total")
			g.Expect(got.FromBackup).To(gomega.Equal(tc.fromBack), "from backup")
			g.Expect(got.Unmatched).To(gomega.HaveLen(tc.unmatched), "unmatched: %v", got.Unmatched)
		})
	}
}

func TestCoverageMismatch_failsOnEitherFigure(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hub   map[string]int
		pods  podCount
		wants []string
	}{
		{"agree", map[string]int{"backup": 2, "namespace-ignored": 3}, podCount{Total: 5, FromBackup: 2}, nil},
		{"the hub counts a backup the node did not start", map[string]int{"backup": 3, "namespace-ignored": 2},
			podCount{Total: 5, FromBackup: 2}, []string{"3 containers from backups, the Pods show 2"}},
		{"the hub misses a running container", map[string]int{"backup": 2, "owner-not-patchable": 2},
			podCount{Total: 5, FromBackup: 2}, []string{"4 running containers, the Pods show 5"}},
		{"both", map[string]int{}, podCount{Total: 1, FromBackup: 1}, []string{"0 containers from backups", "0 running containers"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := gomega.NewWithT(t)
			got := coverageMismatch(coverageFigure{Cluster: "member-1", Containers: tc.hub}, tc.pods)
			if tc.wants == nil {
				g.Expect(got).To(gomega.BeEmpty())
				return
			}
			for _, w := range tc.wants {
				g.Expect(got).To(gomega.ContainSubstring(w))
			}
		})
	}
}

func TestHubCoverage_readsOneMembersFigure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/coverage" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, `{"time":"2026-01-01T00:00:00Z","clusters":[`+
			`{"cluster":"member-1","containers":{"backup":1}},`+
			`{"cluster":"member-2","containers":{"backup":4,"not-copied-yet":2}}],"error":"cluster member-3: listing Pods: down"}`)
	}))
	defer srv.Close()
	for _, tc := range []struct {
		member string
		want   map[string]int
		err    string
	}{
		{"member-2", map[string]int{"backup": 4, "not-copied-yet": 2}, ""},
		{"member-3", nil, "member-3: listing Pods: down"},
	} {
		t.Run(tc.member, func(t *testing.T) {
			g := gomega.NewWithT(t)
			got, err := hubCoverage(t.Context(), srv.URL+"/", tc.member)
			if tc.err != "" {
				g.Expect(err).To(gomega.MatchError(gomega.ContainSubstring(tc.err)))
				return
			}
			g.Expect(err).NotTo(gomega.HaveOccurred())
			g.Expect(got.Containers).To(gomega.Equal(tc.want))
		})
	}
	_, err := hubCoverage(t.Context(), srv.URL+"/nothing-here/", "member-1")
	gomega.NewWithT(t).Expect(err).To(gomega.MatchError(gomega.ContainSubstring("404")), "a dashboard without the API is an error")
}
