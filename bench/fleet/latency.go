package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/e2e/env"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// Namespaces of the latency samples, in the first API server. The webhooks skip the first
// (the seed's opt-out label), so only the agent's controller can patch there.
const (
	nsController = "latency-controller"
	nsAdmission  = "latency-admission"
	nsCold       = "latency-cold"
	optOutLabel  = "validate-backups.image-cloner.io"
)

// deploymentWatch tells, for each Deployment name, when a watch first saw it patched.
type deploymentWatch struct {
	f *fleet
	w watch.Interface

	mu      sync.Mutex
	waiters map[string]chan time.Time
}

func (f *fleet) watchDeployments(ctx context.Context, c client.WithWatch, ns string) (*deploymentWatch, error) {
	w, err := c.Watch(ctx, &appsv1.DeploymentList{}, client.InNamespace(ns))
	if err != nil {
		return nil, fmt.Errorf("watching Deployments in %s: %w", ns, err)
	}
	dw := &deploymentWatch{f: f, w: w, waiters: map[string]chan time.Time{}}
	go func() {
		for ev := range w.ResultChan() {
			at := time.Now()
			d, ok := ev.Object.(*appsv1.Deployment)
			if !ok || !f.patched(&d.Spec.Template.Spec) {
				continue
			}
			dw.mu.Lock()
			if ch, ok := dw.waiters[d.Name]; ok {
				ch <- at
				delete(dw.waiters, d.Name)
			}
			dw.mu.Unlock()
		}
	}()
	return dw, nil
}

// expect registers name before it is created, so that no event is missed.
func (dw *deploymentWatch) expect(name string) chan time.Time {
	ch := make(chan time.Time, 1)
	dw.mu.Lock()
	dw.waiters[name] = ch
	dw.mu.Unlock()
	return ch
}

// createAndWait creates d and returns how long until it was patched, and by which path:
// "admission" when Create already returned it rewritten, else "controller".
func (dw *deploymentWatch) createAndWait(ctx context.Context, c client.Client, d *appsv1.Deployment, timeout time.Duration) (time.Duration, string, error) {
	ch := dw.expect(d.Name)
	start := time.Now()
	if err := c.Create(ctx, d); err != nil {
		return 0, "", fmt.Errorf("creating %s/%s: %w", d.Namespace, d.Name, err)
	}
	if dw.f.patched(&d.Spec.Template.Spec) {
		return time.Since(start), "admission", nil
	}
	select {
	case at := <-ch:
		return at.Sub(start), "controller", nil
	case <-time.After(timeout):
		return 0, "", fmt.Errorf("%s/%s not patched within %s", d.Namespace, d.Name, timeout)
	case <-ctx.Done():
		return 0, "", ctx.Err()
	}
}

// latency measures time-to-patch of backed-up images by both paths, then of cold images.
func (f *fleet) latency(ctx context.Context, res *Result) error {
	c := f.clients[0]
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: nsController, Labels: map[string]string{optOutLabel: "disable"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: nsAdmission}},
		{ObjectMeta: metav1.ObjectMeta{Name: nsCold}},
	} {
		if err := c.Create(ctx, ns); err != nil {
			return fmt.Errorf("creating namespace %s: %w", ns.Name, err)
		}
	}
	// An image the first API server's workloads run, hence Ready there.
	f.mu.Lock()
	var ready []string
	for img := range f.used[0] {
		ready = append(ready, img)
	}
	f.mu.Unlock()
	if len(ready) == 0 {
		return fmt.Errorf("no image is used in %s", f.e.Members[0].Name)
	}
	sort.Strings(ready)
	image := ready[0]

	for _, run := range []struct {
		ns  string
		lat *Percentiles
		by  *map[string]int
	}{
		{nsController, &res.PatchLatencyMs, &res.PatchedBy},
		{nsAdmission, &res.AdmissionLatencyMs, &res.AdmissionPatchedBy},
	} {
		dw, err := f.watchDeployments(ctx, c, run.ns)
		if err != nil {
			return err
		}
		var ds []time.Duration
		by := map[string]int{}
		for i := range f.cfg.Samples {
			d, path, err := dw.createAndWait(ctx, c, env.Deployment(run.ns, fmt.Sprintf("sample-%04d", i), image), time.Minute)
			if err != nil {
				dw.w.Stop()
				return err
			}
			ds = append(ds, d)
			by[path]++
		}
		dw.w.Stop()
		*run.lat, *run.by = percentiles(sortedMs(ds)), by
		f.logf("Time to patch, %s: p50 %.1f ms, p95 %.1f ms, p99 %.1f ms over %d samples; patched by %v",
			run.ns, run.lat.P50, run.lat.P95, run.lat.P99, run.lat.N, by)
	}

	for i := range f.cfg.Cold {
		s, err := f.cold(ctx, i)
		if err != nil {
			return err
		}
		res.Cold = append(res.Cold, s)
		f.logf("Cold %s (%s): patched %.0f ms after create, copy %.0f ms, overhead %.0f ms (%s)",
			s.Image, mib(s.SizeBytes), s.PatchedMs, s.CopyMs, s.OverheadMs, s.PatchedBy)
	}
	return nil
}

// cold pushes a new image of ColdSize bytes, creates a Deployment running it, and measures
// create to patched, and the copy as the ClonedImage's Cloning to Ready seen by a watch.
func (f *fleet) cold(ctx context.Context, i int) (ColdSample, error) {
	c := f.clients[0]
	img, err := random.Image(f.cfg.ColdSize/2, 2)
	if err != nil {
		return ColdSample{}, err
	}
	ref, err := name.ParseReference(fmt.Sprintf("%s/fleet/cold-%d:1.0", f.e.Upstream.Host, i))
	if err != nil {
		return ColdSample{}, err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithTransport(f.e.Upstream.Transport())); err != nil {
		return ColdSample{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	src := ref.String()

	w, err := c.Watch(ctx, &v1alpha1.ClonedImageList{})
	if err != nil {
		return ColdSample{}, fmt.Errorf("watching ClonedImages: %w", err)
	}
	defer w.Stop()
	var mu sync.Mutex
	var cloning, ready time.Time
	go func() {
		for ev := range w.ResultChan() {
			at := time.Now()
			ci, ok := ev.Object.(*v1alpha1.ClonedImage)
			if !ok || ci.Spec.Source != src {
				continue
			}
			mu.Lock()
			if ci.Status.Phase == v1alpha1.PhaseCloning && cloning.IsZero() {
				cloning = at
			}
			if ci.IsReady() && ready.IsZero() {
				ready = at
			}
			mu.Unlock()
		}
	}()
	dw, err := f.watchDeployments(ctx, c, nsCold)
	if err != nil {
		return ColdSample{}, err
	}
	defer dw.w.Stop()
	start := time.Now()
	d, path, err := dw.createAndWait(ctx, c, env.Deployment(nsCold, fmt.Sprintf("cold-%d", i), src), 5*time.Minute)
	if err != nil {
		return ColdSample{}, err
	}
	mu.Lock()
	defer mu.Unlock()
	s := ColdSample{Image: src, SizeBytes: f.cfg.ColdSize, PatchedMs: ms(d), PatchedBy: path}
	switch {
	case !cloning.IsZero() && !ready.IsZero():
		s.CopyMs = ms(ready.Sub(cloning))
	case !ready.IsZero():
		// Cloning was never seen on its own (both writes came in one watch window): count
		// everything up to Ready as the copy.
		s.CopyMs = ms(ready.Sub(start))
	}
	s.OverheadMs = s.PatchedMs - s.CopyMs
	return s, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
