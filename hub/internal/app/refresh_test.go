package app_test

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// TestImages_movedTagsAreCopiedAgainAndPrunedBackupsRestored moves a tag upstream and prunes a
// backup behind the hub's back: with short TAG_REFRESH_INTERVAL and VERIFY_INTERVAL, the hub
// notices both by itself (no workload changes) and the backup ends up with the new digest. When
// the source is then deleted upstream, the backup stays Ready.
func TestImages_movedTagsAreCopiedAgainAndPrunedBackupsRestored(t *testing.T) {
	g := NewWithT(t)
	f, m1 := startRefreshingFleet(t, false)
	ctx := t.Context()

	image, first := f.seed("team/moving:stable")
	g.Expect(m1.Client.Create(ctx, deployment(namespace(t, m1), "web", image))).To(Succeed())
	ci := waitPhase(t, m1, image, v1alpha1.PhaseReady)
	g.Expect(ci.Status.Digest).To(Equal(first.String()))

	_, second := f.seed("team/moving:stable")
	g.Expect(second).NotTo(Equal(first))
	g.Expect(testenv.WaitFor(ctx, wait, func(ctx context.Context) (bool, error) {
		ci, err := clonedImage(ctx, m1, image)
		return err == nil && ci.IsReady() && ci.Status.Digest == second.String(), err
	})).To(Succeed(), "the moved tag was not backed up again")

	backup, err := name.ParseReference(ci.Status.Backup)
	g.Expect(err).NotTo(HaveOccurred())
	auth := remote.WithAuth(&authn.Basic{Username: f.backup.Username, Password: f.backup.Password})
	head := func() (string, error) {
		d, err := remote.Head(backup, auth, remote.WithTransport(f.backup.Transport()))
		if err != nil {
			return "", err
		}
		return d.Digest.String(), nil
	}
	g.Expect(head()).To(Equal(second.String()))
	g.Expect(remote.Delete(backup.Context().Digest(second.String()), auth, remote.WithTransport(f.backup.Transport()))).To(Succeed())
	_, err = head()
	g.Expect(err).To(HaveOccurred(), "the backup was pruned")

	g.Expect(testenv.WaitFor(ctx, wait, func(context.Context) (bool, error) {
		d, err := head()
		return err == nil && d == second.String(), nil
	})).To(Succeed(), "the pruned backup was not restored")

	// The publisher deletes the image: that is what the backup is for. The ClonedImage stays
	// Ready, with a condition saying the source could not be checked.
	src, err := name.ParseReference(image)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(remote.Delete(src.Context().Digest(second.String()), remote.WithTransport(f.upstream.Transport()))).To(Succeed())
	var gone *metav1.Condition
	g.Expect(testenv.WaitFor(ctx, wait, func(ctx context.Context) (bool, error) {
		ci, err = clonedImage(ctx, m1, image)
		if err != nil || ci == nil {
			return false, err
		}
		gone = meta.FindStatusCondition(ci.Status.Conditions, v1alpha1.SourceCondition)
		return gone != nil && gone.Status == metav1.ConditionFalse, nil
	})).To(Succeed(), "the missing source was not reported")
	g.Expect(gone.Reason).To(Equal(v1alpha1.ReasonSourceNotFound))
	g.Expect(gone.Message).To(ContainSubstring("the backup is intact"))
	g.Expect(ci.IsReady()).To(BeTrue())
	g.Expect(ci.Status.Digest).To(Equal(second.String()))
}
