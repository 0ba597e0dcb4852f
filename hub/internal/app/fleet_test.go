package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/imageref"
)

// TestHub_copiesAnImageOnceForTheWholeFleet registers two members, one per Secret convention,
// runs the same image in both (a Deployment in one, a DaemonSet in the other), and checks that
// the backup registry received exactly one copy while each member got a Ready ClonedImage with
// the source's digest; workloads in ignored namespaces get nothing.
func TestHub_copiesAnImageOnceForTheWholeFleet(t *testing.T) {
	g := NewWithT(t)
	f := startFleet(t, fleetOptions{members: 2})
	ctx := t.Context()
	m1, m2 := f.members[0], f.members[1]
	f.register(m1, registration.Label)
	f.register(m2, registration.ClusterAPI)
	f.waitState(m1.Name, clusters.Connected)
	f.waitState(m2.Name, clusters.Connected)
	g.Expect(f.status(m2.Name).Convention).To(Equal(registration.ClusterAPI))

	shared, digest := f.seed("team/web:1.0")
	only, _ := f.seed("team/tool:2.0")
	ignored, _ := f.seed("team/system:3.0")
	seeded, err := f.upstream.CountRequests("", "/team/system/")
	g.Expect(err).NotTo(HaveOccurred())

	ns1, ns2 := namespace(t, m1), namespace(t, m2)
	start := time.Now()
	g.Expect(m1.Client.Create(ctx, deployment(ns1, "web", shared, only))).To(Succeed())
	g.Expect(m2.Client.Create(ctx, daemonSet(ns2, "web", shared))).To(Succeed())
	ensureNamespace(t, m1, "kube-system")
	g.Expect(m1.Client.Create(ctx, deployment("kube-system", "system", ignored))).To(Succeed())

	src, _ := imageref.Parse(shared)
	for _, m := range f.members {
		ci := waitPhase(t, m, shared, v1alpha1.PhaseReady)
		g.Expect(ci.Spec.Source).To(Equal(src.String()))
		g.Expect(ci.Status.Digest).To(Equal(digest.String()))
		g.Expect(ci.Status.Backup).To(HavePrefix(f.backup.Host + "/backups/"))
		g.Expect(ci.Status.Size).To(BeNumerically(">", 4096))
		g.Expect(ci.Status.LastVerified).NotTo(BeNil())
		g.Expect(ci.IsReady()).To(BeTrue())
	}
	waitPhase(t, m1, only, v1alpha1.PhaseReady)
	testenv.Report(t, "hub: workloads created to ClonedImages Ready in 2 members (3 images, 2 copies) %s", time.Since(start).Round(time.Millisecond))

	// One manifest PUT for the shared image (a single-platform image has one manifest).
	sharedBackup := waitPhase(t, m1, shared, v1alpha1.PhaseReady).Status.Backup
	repo := sharedBackup[len(f.backup.Host):]
	repo = repo[:len(repo)-len(":1.0")]
	puts, err := f.backup.CountManifestPuts(repo)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(puts).To(Equal(1), "manifest PUTs for %s", repo)
	testenv.Report(t, "hub: image used in 2 members copied with %d manifest PUT", puts)

	// The metrics say the same: two copies (the shared image and "only"), bytes uploaded, both
	// members connected.
	g.Expect(f.metric("image_cloner_copies_total", map[string]string{"result": "copied"})).To(BeNumerically("==", 2))
	g.Expect(f.metric("image_cloner_bytes_uploaded_total", nil)).To(BeNumerically(">", 8192))
	g.Expect(f.metric("image_cloner_cluster_connected", map[string]string{"cluster": m1.Name})).To(BeNumerically("==", 1))
	g.Expect(f.metric("image_cloner_cluster_connected", map[string]string{"cluster": m2.Name})).To(BeNumerically("==", 1))
	g.Expect(f.metric("image_cloner_copies_in_flight", nil)).To(BeNumerically("==", 0))

	// The ignored image: m2 has no workload using "only", and nobody got the kube-system image.
	// Both reconciles ran in the same queue as the ones above; to be sure the ignored one was
	// looked at, wait for an image created after it to be Ready first.
	later, _ := f.seed("team/later:1")
	g.Expect(m1.Client.Create(ctx, deployment("kube-system", "later-probe", ignored))).To(Succeed())
	g.Expect(m1.Client.Create(ctx, deployment(ns1, "later", later))).To(Succeed())
	waitPhase(t, m1, later, v1alpha1.PhaseReady)
	for _, c := range []*testenv.Cluster{m1, m2} {
		ci, err := clonedImage(ctx, c, ignored)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ci).To(BeNil(), "image in an ignored namespace got a ClonedImage in %s", c.Name)
	}
	ci, err := clonedImage(ctx, m2, only)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ci).To(BeNil(), "a member that does not use an image gets no ClonedImage")
	n, err := f.upstream.CountRequests("", "/team/system/")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(n).To(Equal(seeded), "the hub never asked the upstream registry about the ignored image")
}

// TestHub_localClusterServesTheHubsOwnCluster runs the hub with --local-cluster and no
// registration Secret: the hub's own cluster is member "local" and its workloads are backed up
// (the seed's single-cluster setup); the hub's own namespace and REGISTRIES_TO_IGNORE are not.
// Changing BACKUP_REGISTRY moves every backup.
func TestHub_localClusterServesTheHubsOwnCluster(t *testing.T) {
	g := NewWithT(t)
	f := startFleet(t, fleetOptions{local: true})
	ctx := t.Context()
	setConfig(t, f, map[string]string{
		config.KeyBackupRegistry:     f.backupRegistry,
		config.KeyRegistriesToIgnore: "ignored.example",
	})
	f.waitState(clusters.LocalCluster, clusters.Connected)
	g.Expect(f.status(clusters.LocalCluster).Secret).To(BeEmpty())

	image, digest := f.seed("team/local:1")
	own, _ := f.seed("team/own:1")
	g.Expect(f.hub.Client.Create(ctx, deployment(f.ns, "hub-itself", own))).To(Succeed())
	// An image of an ignored registry (which does not exist: trying it would record a failure).
	skipped := "ignored.example/team/skipped:1"
	g.Expect(f.hub.Client.Create(ctx, deployment(namespace(t, f.hub), "skipped", skipped))).To(Succeed())
	g.Expect(f.hub.Client.Create(ctx, deployment(namespace(t, f.hub), "web", image))).To(Succeed())
	ci := waitPhase(t, f.hub, image, v1alpha1.PhaseReady)
	g.Expect(ci.Status.Digest).To(Equal(digest.String()))
	mine, err := clonedImage(ctx, f.hub, own)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(mine).To(BeNil(), "the installation namespace is always ignored")
	none, err := clonedImage(ctx, f.hub, skipped)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(none).To(BeNil(), "images of REGISTRIES_TO_IGNORE are never copied")

	// A new BACKUP_REGISTRY is picked up without a restart, and every image is backed up there.
	setConfig(t, f, map[string]string{
		config.KeyBackupRegistry:     f.backupRegistry + "/moved",
		config.KeyRegistriesToIgnore: "ignored.example",
	})
	g.Expect(testenv.WaitFor(ctx, wait, func(ctx context.Context) (bool, error) {
		ci, err := clonedImage(ctx, f.hub, image)
		return err == nil && ci.IsReady() && strings.HasPrefix(ci.Status.Backup, f.backupRegistry+"/moved/"), err
	})).To(Succeed(), "the image was not backed up under the new BACKUP_REGISTRY")
}
