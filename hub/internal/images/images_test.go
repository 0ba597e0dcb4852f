package images

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/imageref"
	"github.com/image-cloner/image-cloner/pkg/mirror"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

func TestSources_includeOriginalsOfRewrittenWorkloads(t *testing.T) {
	g := NewWithT(t)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
			workload.OriginalImagesAnnotation: `{"containers/web":"nginx:1.25"}`,
		}},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init", Image: "busybox"}},
			Containers: []corev1.Container{
				{Name: "web", Image: "quay.io/acme/docker.io_library_nginx:1.25"},
				{Name: "side", Image: "docker.io/library/busybox:latest"},
				{Name: "bad", Image: "Not A Reference"},
			},
		}}},
	}
	g.Expect(Sources(d)).To(ConsistOf(
		"docker.io/library/busybox:latest",
		"quay.io/acme/docker.io_library_nginx:1.25",
		"docker.io/library/nginx:1.25",
	))
	reqs := mapToImages(t.Context(), d)
	g.Expect(reqs).To(HaveLen(3))

	ci := &v1alpha1.ClonedImage{Spec: v1alpha1.ClonedImageSpec{Source: "nginx"}}
	g.Expect(mapToImages(t.Context(), ci)).To(Equal([]reconcile.Request{request("docker.io/library/nginx:latest")}))
}

func TestReason_mapsMirrorKindsAndSides(t *testing.T) {
	for _, tc := range []struct {
		kind mirror.Kind
		side mirror.Side
		want string
	}{
		{mirror.KindNotFound, mirror.SideSource, v1alpha1.ReasonSourceNotFound},
		{mirror.KindNotFound, mirror.SideTarget, v1alpha1.ReasonBackupUnreachable},
		{mirror.KindNotFound, mirror.SideUnknown, v1alpha1.ReasonSourceNotFound},
		{mirror.KindUnauthorized, mirror.SideTarget, v1alpha1.ReasonAuthenticationFailed},
		{mirror.KindUnreachable, mirror.SideSource, v1alpha1.ReasonSourceUnreachable},
		{mirror.KindUnreachable, mirror.SideTarget, v1alpha1.ReasonBackupUnreachable},
		{mirror.KindRateLimited, mirror.SideSource, v1alpha1.ReasonRateLimited},
		{mirror.KindSchema1, mirror.SideTarget, v1alpha1.ReasonSchema1Refused},
		{mirror.KindDigestMismatch, mirror.SideTarget, v1alpha1.ReasonDigestMismatch},
		{mirror.KindOther, mirror.SideUnknown, v1alpha1.ReasonCopyFailed},
	} {
		NewWithT(t).Expect(reason(tc.kind, tc.side)).To(Equal(tc.want), "%s from the %s", tc.kind, tc.side)
	}
	g := NewWithT(t)
	g.Expect(reasonFor(&mirror.DigestMismatchError{})).To(Equal(v1alpha1.ReasonDigestMismatch))
	g.Expect(reasonFor(fmt.Errorf("x: %w", &mirror.Schema1Error{Source: "a", Target: "b"}))).To(Equal(v1alpha1.ReasonSchema1Refused))
}

// The copy engine and the namer must agree on the digest tag, or a backup's reserved tag and
// the tag the engine writes would differ.
func TestDigestTag_isTheSameInTheNamerAndTheCopyEngine(t *testing.T) {
	for _, d := range []string{"sha256:" + strings.Repeat("ab", 32), "sha512:" + strings.Repeat("cd", 64)} {
		alg, hex, _ := strings.Cut(d, ":")
		NewWithT(t).Expect(imageref.DigestTag(d)).To(Equal(mirror.DigestTag(v1.Hash{Algorithm: alg, Hex: hex})))
	}
}

func TestUpToDate_waitsForTheShorterIntervalOfTheOldestVerification(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	r := &Reconciler{Now: func() time.Time { return now }}
	cfg := &config.Config{TagRefreshInterval: 10 * time.Minute, VerifyInterval: time.Hour}
	tag, _ := imageref.Parse("nginx:1.25")
	pinned, _ := imageref.Parse("nginx@sha256:" + strings.Repeat("a", 64))
	backup, _ := imageref.Parse("quay.io/acme/docker.io_library_nginx:1.25")
	ready := func(ago time.Duration) *user {
		v := metav1.NewTime(now.Add(-ago))
		return &user{current: &v1alpha1.ClonedImage{Status: v1alpha1.ClonedImageStatus{
			Phase: v1alpha1.PhaseReady, Backup: backup.String(), Digest: "sha256:" + strings.Repeat("b", 64), LastVerified: &v,
		}}}
	}
	for _, tc := range []struct {
		name  string
		src   imageref.Reference
		users []*user
		wait  time.Duration
		ok    bool
	}{
		{"fresh tag", tag, []*user{ready(time.Minute), ready(4 * time.Minute)}, 6 * time.Minute, true},
		{"tag due for refresh", tag, []*user{ready(time.Minute), ready(11 * time.Minute)}, 0, false},
		{"pinned digest waits for verification only", pinned, []*user{ready(11 * time.Minute)}, 49 * time.Minute, true},
		{"pinned digest due for verification", pinned, []*user{ready(61 * time.Minute)}, 0, false},
		{"a member without a ClonedImage", tag, []*user{ready(time.Minute), {}}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wait, ok := r.upToDate(cfg, tc.src, backup, tc.users)
			NewWithT(t).Expect(ok).To(Equal(tc.ok))
			NewWithT(t).Expect(wait).To(Equal(tc.wait))
		})
	}
	// Another backup location (BACKUP_REGISTRY changed) is never up to date.
	moved, _ := imageref.Parse("quay.io/other/docker.io_library_nginx:1.25")
	_, ok := r.upToDate(cfg, tag, moved, []*user{ready(time.Minute)})
	NewWithT(t).Expect(ok).To(BeFalse())
}
