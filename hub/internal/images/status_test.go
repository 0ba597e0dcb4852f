package images

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/imageref"
	"github.com/image-cloner/image-cloner/pkg/mirror"
)

func statusRefs(t *testing.T) (src, backup imageref.Reference, digest v1.Hash) {
	t.Helper()
	src, err := imageref.Parse("nginx:1.25")
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	backup, err = imageref.Parse("quay.io/acme/docker.io_library_nginx:1.25")
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	return src, backup, v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("b", 64)}
}

// readyStatus is a status as markReady writes it, verified at verified, Copied.
func readyStatus(t *testing.T, verified time.Time) *v1alpha1.ClonedImageStatus {
	src, backup, digest := statusRefs(t)
	st := &v1alpha1.ClonedImageStatus{}
	ready(src, backup, mirror.Result{Digest: digest, Size: 2048}, metav1.NewTime(verified), time.Hour)(st, 1)
	return st
}

// TestReady_aPresenceCacheHitLeavesARecentlyVerifiedStatusAlone: a cache hit verified nothing,
// so a Ready status verified within the interval is not rewritten (no write, no event); a real
// verification, a status due, another digest or a status not Ready yet are.
func TestReady_aPresenceCacheHitLeavesARecentlyVerifiedStatusAlone(t *testing.T) {
	src, backup, digest := statusRefs(t)
	verified := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	now := verified.Add(10 * time.Minute)
	hit := mirror.Result{Digest: digest, Size: 512, CacheHit: true}
	for _, tc := range []struct {
		name      string
		st        *v1alpha1.ClonedImageStatus
		res       mirror.Result
		interval  time.Duration
		unchanged bool
	}{
		{"cache hit, verified within the interval", readyStatus(t, verified), hit, time.Hour, true},
		// The positive controls: each of these is written.
		{"cache hit, verification due", readyStatus(t, verified), hit, 5 * time.Minute, false},
		{"the backup registry was asked", readyStatus(t, verified), mirror.Result{Digest: digest, AlreadyPresent: true}, time.Hour, false},
		{"another digest", readyStatus(t, verified), mirror.Result{Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("c", 64)}, CacheHit: true}, time.Hour, false},
		{"still Cloning", &v1alpha1.ClonedImageStatus{Phase: v1alpha1.PhaseCloning}, hit, time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			before := tc.st.DeepCopy()
			ready(src, backup, tc.res, metav1.NewTime(now), tc.interval)(tc.st, 1)
			if tc.unchanged {
				g.Expect(equalStatus(before, tc.st)).To(BeTrue(), "rewritten: %+v", tc.st)
				return
			}
			g.Expect(tc.st.Phase).To(Equal(v1alpha1.PhaseReady))
			g.Expect(tc.st.Digest).To(Equal(tc.res.Digest.String()))
			g.Expect(tc.st.LastVerified.Time).To(Equal(now))
		})
	}
}

// TestReady_dropsTheSourceConditionEvenWhenLeftAlone: a successful Copy means the source
// answered, so "the source could not be checked" goes, cache hit or not.
func TestReady_dropsTheSourceConditionEvenWhenLeftAlone(t *testing.T) {
	src, backup, digest := statusRefs(t)
	verified := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	st := readyStatus(t, verified)
	setCondition(st, 1, v1alpha1.SourceCondition, metav1.ConditionFalse, v1alpha1.ReasonSourceUnreachable, "down")
	ready(src, backup, mirror.Result{Digest: digest, CacheHit: true}, metav1.NewTime(verified.Add(time.Minute)), time.Hour)(st, 1)
	g := NewWithT(t)
	g.Expect(meta.FindStatusCondition(st.Conditions, v1alpha1.SourceCondition)).To(BeNil())
	g.Expect(st.LastVerified.Time).To(Equal(verified))
}

// TestCloning_neverTurnsAWorkedOnStatusBack: the status write re-reads after a conflict and
// applies the change again; a registration whose cache had the ClonedImage new must not turn
// the Ready (or Failed) status another registration wrote back to Cloning.
func TestCloning_neverTurnsAWorkedOnStatusBack(t *testing.T) {
	src, backup, _ := statusRefs(t)
	for _, tc := range []struct {
		phase v1alpha1.Phase
		want  v1alpha1.Phase
	}{
		{"", v1alpha1.PhaseCloning},
		{v1alpha1.PhasePending, v1alpha1.PhaseCloning},
		{v1alpha1.PhaseReady, v1alpha1.PhaseReady},
		{v1alpha1.PhaseFailed, v1alpha1.PhaseFailed},
	} {
		t.Run(string(tc.phase), func(t *testing.T) {
			st := &v1alpha1.ClonedImageStatus{Phase: tc.phase}
			cloning(src, backup)(st, 1)
			NewWithT(t).Expect(st.Phase).To(Equal(tc.want))
		})
	}
}

// TestStamp_survivesTheAPIServersRoundTrip: a status stamped now equals itself as read back
// from JSON (what the API server returns), so a registration that finds it written sends
// nothing. The positive control: a time with nanoseconds does not.
func TestStamp_survivesTheAPIServersRoundTrip(t *testing.T) {
	g := NewWithT(t)
	at := time.Date(2026, 1, 1, 12, 0, 0, 123456789, time.UTC)
	roundTrip := func(v metav1.Time) *v1alpha1.ClonedImageStatus {
		st := &v1alpha1.ClonedImageStatus{Phase: v1alpha1.PhaseReady, LastVerified: &v}
		data, err := json.Marshal(st)
		g.Expect(err).NotTo(HaveOccurred())
		back := &v1alpha1.ClonedImageStatus{}
		g.Expect(json.Unmarshal(data, back)).To(Succeed())
		return back
	}
	stamped := (&Reconciler{Now: func() time.Time { return at }}).stamp()
	g.Expect(equalStatus(roundTrip(stamped), &v1alpha1.ClonedImageStatus{Phase: v1alpha1.PhaseReady, LastVerified: &stamped})).To(BeTrue())
	raw := metav1.NewTime(at)
	g.Expect(equalStatus(roundTrip(raw), &v1alpha1.ClonedImageStatus{Phase: v1alpha1.PhaseReady, LastVerified: &raw})).To(BeFalse())
}
