package app_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// TestImages_registrationsOfOneAPIServerDoNotFight registers one member four times (four
// Secrets, one kubeconfig: a cluster registered twice by mistake, or under a second name during
// a migration). Every registration writes the same ClonedImage status; a write that loses the
// optimistic-lock race must re-read and find the status already there, not fail the reconcile
// (the fleet benchmark saw thousands of "the object has been modified" errors and reconciles
// retried with backoff before this).
func TestImages_registrationsOfOneAPIServerDoNotFight(t *testing.T) {
	g := NewWithT(t)
	var mu sync.Mutex
	var conflicts []string
	log := funcr.New(func(prefix, args string) {
		if strings.Contains(args, "has been modified") {
			mu.Lock()
			conflicts = append(conflicts, prefix+" "+args)
			mu.Unlock()
		}
	}, funcr.Options{Verbosity: 0})
	f := startFleet(t, fleetOptions{members: 1, log: &log})
	ctx := t.Context()
	m := f.members[0]
	const registrations = 4
	for i := range registrations {
		s := m.RegistrationSecret(registration.Label, f.ns)
		s.Name = fmt.Sprintf("%s-%d", s.Name, i)
		g.Expect(f.hub.Client.Create(ctx, s)).To(Succeed())
	}
	for i := range registrations {
		f.waitState(fmt.Sprintf("%s-%d", m.Name, i), clusters.Connected)
	}

	ns := namespace(t, m)
	var images []string
	for i := range 6 {
		img, _ := f.seed(fmt.Sprintf("same/app-%d:1", i))
		images = append(images, img)
	}
	g.Expect(m.Client.Create(ctx, deployment(ns, "web", images...))).To(Succeed())
	for _, img := range images {
		ci := waitPhase(t, m, img, v1alpha1.PhaseReady)
		g.Expect(ci.Status.Digest).NotTo(BeEmpty())
	}
	mu.Lock()
	defer mu.Unlock()
	g.Expect(conflicts).To(BeEmpty(), "registrations of one API server fought over ClonedImage status")
}
