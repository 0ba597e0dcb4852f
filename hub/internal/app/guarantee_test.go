package app_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
)

// backupOptions reach the fleet's backup registry with the push account.
func (f *fleet) backupOptions() []remote.Option {
	return []remote.Option{
		remote.WithAuth(&authn.Basic{Username: f.backup.Username, Password: f.backup.Password}),
		remote.WithTransport(f.backup.Transport()),
	}
}

// startRefreshingFleet starts a fleet of one registered member whose hub re-resolves tags and
// re-verifies backups every second; isolated as fleetOptions says.
func startRefreshingFleet(t *testing.T, isolated bool) (*fleet, *testenv.Cluster) {
	t.Helper()
	f := startFleet(t, fleetOptions{isolated: isolated, members: 1})
	m1 := f.members[0]
	setConfig(t, f, map[string]string{
		config.KeyBackupRegistry:     f.backupRegistry,
		config.KeyTagRefreshInterval: "1s",
		config.KeyVerifyInterval:     "1s",
	})
	f.register(m1, registration.Label)
	return f, m1
}

// pullable reports whether ref can be pulled whole from the backup registry: its manifest,
// config and every layer blob.
func (f *fleet) pullable(ref name.Reference) error {
	img, err := remote.Image(ref, f.backupOptions()...)
	if err != nil {
		return err
	}
	if _, err := img.RawConfigFile(); err != nil {
		return fmt.Errorf("config of %s: %w", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("layer of %s: %w", ref, err)
		}
		_, err = io.Copy(io.Discard, rc)
		_ = rc.Close()
		if err != nil {
			return fmt.Errorf("layer of %s: %w", ref, err)
		}
	}
	return nil
}

// Source and backup on one registry host: quay.io/org/app backed up under quay.io/acme. When
// the publisher deletes the source, the backup is intact and must stay Ready; the hub used to
// read the 404 of the source as the backup's, because both have the same host.
func TestImages_sourceOnTheBackupsHostDeletedStaysReady(t *testing.T) {
	g := NewWithT(t)
	f, m1 := startRefreshingFleet(t, false)
	ctx := t.Context()

	src, err := name.ParseReference(f.backup.Host + "/upstream/sameapp:v1")
	g.Expect(err).NotTo(HaveOccurred())
	img, err := random.Image(2048, 2)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(remote.Write(src, img, f.backupOptions()...)).To(Succeed())
	digest, err := img.Digest()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(m1.Client.Create(ctx, deployment(namespace(t, m1), "web", src.String()))).To(Succeed())
	ci := waitPhase(t, m1, src.String(), v1alpha1.PhaseReady)
	g.Expect(ci.Status.Backup).To(HavePrefix(f.backup.Host + "/backups/"))

	g.Expect(remote.Delete(src.Context().Digest(digest.String()), f.backupOptions()...)).To(Succeed())

	var gone *metav1.Condition
	g.Expect(testenv.WaitFor(ctx, wait, func(ctx context.Context) (bool, error) {
		ci, err = clonedImage(ctx, m1, src.String())
		if err != nil || ci == nil {
			return false, err
		}
		if ci.Status.Phase == v1alpha1.PhaseFailed {
			return false, fmt.Errorf("the backup was marked Failed although it is intact: %+v", ci.Status.Conditions)
		}
		gone = meta.FindStatusCondition(ci.Status.Conditions, v1alpha1.SourceCondition)
		return gone != nil && gone.Status == metav1.ConditionFalse, nil
	})).To(Succeed(), "the missing source was not reported")
	g.Expect(gone.Reason).To(Equal(v1alpha1.ReasonSourceNotFound))
	g.Expect(gone.Message).To(ContainSubstring("does not exist upstream"))
	g.Expect(ci.IsReady()).To(BeTrue())
	backup, err := name.ParseReference(ci.Status.Backup)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.pullable(backup.Context().Digest(digest.String()))).To(Succeed())
}

// Workloads are pinned to backup@digest. When the upstream tag moves, the backup's tag moves
// with it and the old digest is left without that tag; registries garbage-collect untagged
// manifests. Every digest the hub backed up must survive the real registry's collector: after
// the tag moved, after a pruned backup was copied again, and after a restart of the hub.
func TestImages_pinnedDigestsSurviveGarbageCollection(t *testing.T) {
	g := NewWithT(t)
	f, m1 := startRefreshingFleet(t, true)
	ctx := t.Context()

	image, first := f.seed("team/moving:stable")
	g.Expect(m1.Client.Create(ctx, deployment(namespace(t, m1), "web", image))).To(Succeed())
	ci := waitPhase(t, m1, image, v1alpha1.PhaseReady)
	g.Expect(ci.Status.Digest).To(Equal(first.String()))
	backup, err := name.ParseReference(ci.Status.Backup)
	g.Expect(err).NotTo(HaveOccurred())
	pinned := func(d v1.Hash) name.Reference { return backup.Context().Digest(d.String()) }
	readyWith := func(d v1.Hash) {
		t.Helper()
		g.Expect(testenv.WaitFor(ctx, wait, func(ctx context.Context) (bool, error) {
			ci, err := clonedImage(ctx, m1, image)
			return err == nil && ci != nil && ci.IsReady() && ci.Status.Digest == d.String(), err
		})).To(Succeed(), "the image was not Ready with %s", d)
	}
	collect := func(when string) {
		t.Helper()
		out, err := f.backup.GarbageCollect(true)
		g.Expect(err).NotTo(HaveOccurred())
		t.Logf("garbage-collect --delete-untagged %s: %s", when, lastLine(out))
	}

	// 1. The tag moves upstream: the hub copies the new digest to the same backup tag.
	_, second := f.seed("team/moving:stable")
	readyWith(second)
	collect("after the tag moved")
	g.Expect(f.pullable(pinned(first))).To(Succeed(), "the digest pinned before the tag moved is gone")
	g.Expect(f.pullable(pinned(second))).To(Succeed())

	// 2. The backup is pruned behind the hub's back (a manifest delete removes every tag of
	// it); the hub copies it again, and that copy too must survive the collector.
	g.Expect(remote.Delete(pinned(second), f.backupOptions()...)).To(Succeed())
	g.Expect(testenv.WaitFor(ctx, wait, func(context.Context) (bool, error) {
		return f.pullable(pinned(second)) == nil, nil
	})).To(Succeed(), "the pruned backup was not restored")
	readyWith(second)
	collect("after the pruned backup was restored")
	g.Expect(f.pullable(pinned(second))).To(Succeed(), "the restored backup did not survive")
	g.Expect(f.pullable(pinned(first))).To(Succeed())

	// 3. A new hub knows only what the clusters and the registry hold.
	f.restartHub()
	readyWith(second)
	collect("after the hub restarted")
	g.Expect(f.pullable(pinned(first))).To(Succeed(), "a digest was kept only in the old hub's memory")
	g.Expect(f.pullable(pinned(second))).To(Succeed())
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
