package app_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/hub/internal/images"
	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/imageref"
	"github.com/image-cloner/image-cloner/pkg/mirror"
)

// TestImages_failedCopiesAreActionableAndOthersStayReady runs a workload with an image that
// exists and one that does not: the first is Ready, the second Failed with reason
// SourceNotFound, a message saying what to check, and a Warning Event on the workload. Then
// the push credentials turn wrong: a new image fails with AuthenticationFailed while the Ready
// one stays Ready.
func TestImages_failedCopiesAreActionableAndOthersStayReady(t *testing.T) {
	g := NewWithT(t)
	f := startFleet(t, fleetOptions{isolated: true, members: 1})
	ctx := t.Context()
	m1 := f.members[0]
	f.register(m1, registration.Label)

	good, digest := f.seed("team/good:1")
	missing := f.upstream.Host + "/team/missing:1"
	ns := namespace(t, m1)
	dep := deployment(ns, "web", good, missing)
	g.Expect(m1.Client.Create(ctx, dep)).To(Succeed())

	ready := waitPhase(t, m1, good, v1alpha1.PhaseReady)
	g.Expect(ready.Status.Digest).To(Equal(digest.String()))
	failed := waitPhase(t, m1, missing, v1alpha1.PhaseFailed)
	cond := meta.FindStatusCondition(failed.Status.Conditions, v1alpha1.ReadyCondition)
	g.Expect(cond).NotTo(BeNil())
	g.Expect(cond.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(cond.Reason).To(Equal(v1alpha1.ReasonSourceNotFound))
	g.Expect(cond.Message).To(ContainSubstring("does not exist upstream: check the image name and tag"))
	g.Expect(failed.Status.Digest).To(BeEmpty())
	// What the ImagesFailed alert reads: the member's ClonedImages by phase, every phase there.
	f.waitSeries("image_cloner_images", map[string]float64{m1.Name + "/Pending": 0, m1.Name + "/Cloning": 0, m1.Name + "/Ready": 1, m1.Name + "/Failed": 1})
	// And the backup registry answers the hub's probe.
	f.waitSeries("image_cloner_backup_registry_up", map[string]float64{f.backup.Host: 1})

	g.Expect(testenv.WaitFor(ctx, wait, func(ctx context.Context) (bool, error) {
		var list corev1.EventList
		if err := m1.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err
		}
		for _, e := range list.Items {
			if e.InvolvedObject.Kind == "Deployment" && e.InvolvedObject.Name == "web" && e.Type == corev1.EventTypeWarning &&
				e.Reason == images.ReasonBackupFailed && strings.Contains(e.Message, "team/missing:1") && strings.Contains(e.Message, v1alpha1.ReasonSourceNotFound) {
				return true, nil
			}
		}
		return false, nil
	})).To(Succeed(), "no BackupFailed Event on the Deployment")

	// Wrong push credentials: the Mirror is rebuilt with them, and the backup registry refuses.
	_, before := f.h.Settings.Current()
	wrong := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, f.backup.Host, base64.StdEncoding.EncodeToString([]byte(f.backup.Username+":wrong")))
	var push corev1.Secret
	g.Expect(f.hub.Client.Get(ctx, client.ObjectKeyFromObject(f.pushSecret(nil)), &push)).To(Succeed())
	push.Data[corev1.DockerConfigJsonKey] = []byte(wrong)
	g.Expect(f.hub.Client.Update(ctx, &push)).To(Succeed())
	g.Expect(testenv.WaitFor(ctx, wait, func(context.Context) (bool, error) {
		_, m := f.h.Settings.Current()
		return m != before, nil
	})).To(Succeed(), "the Mirror was not rebuilt with the new credentials")

	other, _ := f.seed("team/other:1")
	g.Expect(m1.Client.Create(ctx, deployment(ns, "other", other))).To(Succeed())
	denied := waitPhase(t, m1, other, v1alpha1.PhaseFailed)
	cond = meta.FindStatusCondition(denied.Status.Conditions, v1alpha1.ReadyCondition)
	g.Expect(cond.Reason).To(Equal(v1alpha1.ReasonAuthenticationFailed))
	g.Expect(cond.Message).To(ContainSubstring("push credentials"))
	g.Expect(cond.Message).NotTo(ContainSubstring("wrong"))

	still, err := clonedImage(ctx, m1, good)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(still.IsReady()).To(BeTrue())
	f.waitSeries("image_cloner_images", map[string]float64{m1.Name + "/Pending": 0, m1.Name + "/Cloning": 0, m1.Name + "/Ready": 1, m1.Name + "/Failed": 2})

	// The backup registry stops: its probe says so, and says it again when it is back.
	f.backup.Stop()
	f.waitSeries("image_cloner_backup_registry_up", map[string]float64{f.backup.Host: 0})
	g.Expect(f.backup.Start()).To(Succeed())
	f.waitSeries("image_cloner_backup_registry_up", map[string]float64{f.backup.Host: 1})
}

// TestImages_pendingClonedImagesFromTheAgentArePickedUp creates, as the agent's webhook does, a
// Pending ClonedImage with no workload using it yet: the hub backs the image up and makes it Ready.
func TestImages_pendingClonedImagesFromTheAgentArePickedUp(t *testing.T) {
	g := NewWithT(t)
	f := startFleet(t, fleetOptions{members: 1})
	ctx := t.Context()
	m1 := f.members[0]
	f.register(m1, registration.ClusterAPI)

	image, digest := f.seed("team/denied:1")
	src, err := imageref.Parse(image)
	g.Expect(err).NotTo(HaveOccurred())
	ci := &v1alpha1.ClonedImage{
		ObjectMeta: metav1.ObjectMeta{Name: imageref.ObjectName(src)},
		Spec:       v1alpha1.ClonedImageSpec{Source: src.String()},
	}
	g.Expect(m1.Client.Create(ctx, ci)).To(Succeed())
	uid := ci.UID
	// The agent sets Pending right after creating it; the hub may have been quicker.
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := m1.Client.Get(ctx, client.ObjectKeyFromObject(ci), ci); err != nil || ci.Status.Phase != "" {
			return err
		}
		ci.Status.Phase = v1alpha1.PhasePending
		return m1.Client.Status().Update(ctx, ci)
	})).To(Succeed())

	ready := waitPhase(t, m1, image, v1alpha1.PhaseReady)
	g.Expect(ready.Status.Digest).To(Equal(digest.String()))
	g.Expect(ready.UID).To(Equal(uid), "the agent's object was updated, not replaced")
}

// TestImages_copiesAreBoundedFleetWideByMaxConcurrentReconciles sets MAX_CONCURRENT_RECONCILES
// to 2 and starts five copies at once from two members. Copies are made to overlap: each one
// that gets a slot is held until either the bound is full and the three others are seen
// waiting for a slot, or one copy more than the bound is moving content. Then all run to Ready.
// The bound must be reached and never exceeded. The control case raises the Mirror's own bound
// past the setting (as losing the setting on the way would): the same check must then see more
// than two copies at once, so it can fail.
func TestImages_copiesAreBoundedFleetWideByMaxConcurrentReconciles(t *testing.T) {
	const bound, images = 2, 5
	for _, tc := range []struct {
		name string
		// mirrorOptions are added after the hub's own, so they override the setting.
		mirrorOptions []mirror.Option
		exceeded      bool
	}{
		{"MAX_CONCURRENT_RECONCILES bounds the fleet's copies", nil, false},
		{"control: the check fails when the Mirror ignores the setting", []mirror.Option{mirror.WithMaxConcurrentCopies(images)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peak, copies := boundedCopies(t, bound, images, tc.mirrorOptions)
			g := NewWithT(t)
			g.Expect(copies).To(Equal(images), "one copy per image")
			if tc.exceeded {
				g.Expect(peak).To(BeNumerically(">", bound), "copies in flight at once without the bound")
				return
			}
			g.Expect(peak).To(Equal(bound), "copies in flight at once with MAX_CONCURRENT_RECONCILES=%d", bound)
			testenv.Report(t, "hub: %d copies from 2 members with MAX_CONCURRENT_RECONCILES=%d: peak %d in flight", images, bound, peak)
		})
	}
}

// boundedCopies runs the scenario of TestImages_copiesAreBoundedFleetWideByMaxConcurrentReconciles
// and returns the most copies that were in flight at once, and how many copies were made.
func boundedCopies(t *testing.T, bound, images int, mirrorOptions []mirror.Option) (peak, copies int) {
	g := NewWithT(t)
	var mu sync.Mutex
	inFlight := 0
	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	f := startFleet(t, fleetOptions{members: 2, mirrorOptions: mirrorOptions, observer: mirror.Observer{
		// Called holding the copy's slot: holding the call holds the slot.
		CopyStarted: func(name.Reference, name.Reference) {
			mu.Lock()
			inFlight++
			copies++
			peak = max(peak, inFlight)
			mu.Unlock()
			<-gate
		},
		CopyEnded: func(name.Reference, name.Reference, error) {
			mu.Lock()
			defer mu.Unlock()
			inFlight--
		},
	}})
	t.Cleanup(release) // before the hub stops
	ctx := t.Context()
	setConfig(t, f, map[string]string{
		config.KeyBackupRegistry:          f.backupRegistry,
		config.KeyMaxConcurrentReconciles: fmt.Sprint(bound),
	})
	g.Expect(testenv.WaitFor(ctx, wait, func(context.Context) (bool, error) {
		cfg, _ := f.h.Settings.Current()
		return cfg.MaxConcurrentReconciles == bound, nil
	})).To(Succeed())
	f.register(f.members[0], registration.Label)
	f.register(f.members[1], registration.Label)
	f.waitState(f.members[0].Name, clusters.Connected)
	f.waitState(f.members[1].Name, clusters.Connected)

	var imgs []string
	for i := range images {
		img, err := random.Image(512*1024, 3)
		g.Expect(err).NotTo(HaveOccurred())
		ref, err := name.ParseReference(fmt.Sprintf("%s/team/bounded-%d:1", f.upstream.Host, i))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(remote.Write(ref, img, remote.WithTransport(f.upstream.Transport()))).To(Succeed())
		imgs = append(imgs, ref.String())
	}
	half := len(imgs) / 2
	g.Expect(f.members[0].Client.Create(ctx, deployment(namespace(t, f.members[0]), "a", imgs[:half]...))).To(Succeed())
	g.Expect(f.members[1].Client.Create(ctx, deployment(namespace(t, f.members[1]), "b", imgs[half:]...))).To(Succeed())

	// Hold until the copies overlap as far as they can: the bound full and every other copy
	// blocked waiting for a slot, or a copy beyond the bound.
	var waiting int
	err := testenv.WaitFor(ctx, wait, func(context.Context) (bool, error) {
		mu.Lock()
		n := inFlight
		mu.Unlock()
		waiting = waitingForSlot()
		return n > bound || (n == bound && waiting == images-bound), nil
	})
	mu.Lock()
	held := inFlight
	mu.Unlock()
	g.Expect(err).NotTo(HaveOccurred(), "copies never overlapped: %d in flight, %d waiting for a slot", held, waiting)
	release()
	for i, img := range imgs {
		member := f.members[0]
		if i >= half {
			member = f.members[1]
		}
		waitPhase(t, member, img, v1alpha1.PhaseReady)
	}
	mu.Lock()
	defer mu.Unlock()
	return peak, copies
}

// mirrorAcquire is the frame of a copy waiting for a slot of WithMaxConcurrentCopies.
const mirrorAcquire = "github.com/image-cloner/image-cloner/pkg/mirror.(*Mirror).acquire("

// waitingForSlot counts the goroutines (the hub runs in this process) blocked in the Mirror
// waiting for a copy slot. The Mirror reports no such figure; its goroutines' stacks do. Only
// goroutines parked in acquire's select count: that select blocks only when every slot is
// taken, so a goroutine merely passing through acquire is never counted.
func waitingForSlot() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(header, "[select") && strings.Contains(g, mirrorAcquire) {
			count++
		}
	}
	return count
}
