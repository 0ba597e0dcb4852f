package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/e2e/env"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// fleetLabel marks the benchmark's fleet workloads (not the latency samples).
const fleetLabel = "bench.image-cloner.io/fleet"

// namespaces is how many namespaces each API server's fleet workloads are spread over.
const namespaces = 10

// fleet is the running fleet and what the benchmark put in it.
type fleet struct {
	cfg  Config
	e    *env.Env
	logf func(string, ...any)

	// clients reach each API server with a high rate limit (the benchmark's load is not the
	// hub's: it must not be throttled by client-go's default 5 QPS).
	clients []client.WithWatch
	// pool holds the upstream images; digests their digests by reference.
	pool    []string
	digests map[string]string

	mu sync.Mutex
	// used[i] holds the images the workloads on API server i run; perServer[i] counts them.
	used      []map[string]bool
	perServer []int
	created   int
}

func (f *fleet) connect() error {
	for _, m := range f.e.Members {
		cfg := rest.CopyConfig(m.Config)
		cfg.QPS, cfg.Burst = 1000, 2000
		c, err := client.NewWithWatch(cfg, client.Options{Scheme: testenv.Scheme()})
		if err != nil {
			return fmt.Errorf("client of %s: %w", m.Name, err)
		}
		f.clients = append(f.clients, c)
		f.used = append(f.used, map[string]bool{})
		f.perServer = append(f.perServer, 0)
	}
	return nil
}

// pushPool pushes Images small random images upstream (two 4 KiB layers each: copying bytes is
// bench-copy's subject, this one is about the fleet) and records their digests.
func (f *fleet) pushPool(ctx context.Context) error {
	f.digests = map[string]string{}
	f.pool = make([]string, f.cfg.Images)
	errs := make([]error, f.cfg.Images)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range f.cfg.Images {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ref, err := f.e.SeedImage(fmt.Sprintf("fleet/app-%03d:1.%d", i, i))
			if err != nil {
				errs[i] = err
				return
			}
			f.pool[i] = ref
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("pushing image %d: %w", i, err)
		}
	}
	for _, ref := range f.pool {
		r, err := name.ParseReference(ref)
		if err != nil {
			return err
		}
		d, err := remote.Head(r, remote.WithContext(ctx), remote.WithTransport(f.e.Upstream.Transport()))
		if err != nil {
			return fmt.Errorf("resolving %s: %w", ref, err)
		}
		f.digests[ref] = d.Digest.String()
	}
	f.logf("Pushed %d images upstream", len(f.pool))
	return nil
}

// pick returns one to three distinct images from the pool, skewed towards the first ones so
// that many workloads share images (image k is drawn with probability falling like 1-sqrt(k/n)).
func (f *fleet) pick(r *rand.Rand) []string {
	n := 1 + r.IntN(3)
	seen := map[int]bool{}
	var out []string
	for len(out) < min(n, len(f.pool)) {
		u := r.Float64()
		k := int(float64(len(f.pool)) * u * u)
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, f.pool[k])
	}
	return out
}

// workloadObject returns the i-th workload named prefix-i: Deployments and DaemonSets in turn,
// round-robin over the API servers, spread over namespaces.
func (f *fleet) workloadObject(prefix string, i int, images []string) (int, client.Object) {
	server := i % len(f.clients)
	ns := fmt.Sprintf("fleet-%d", (i/len(f.clients))%namespaces)
	nm := fmt.Sprintf("%s-%05d", prefix, i)
	var obj client.Object
	if i%2 == 0 {
		obj = env.Deployment(ns, nm, images...)
	} else {
		obj = env.DaemonSet(ns, nm, images...)
	}
	obj.SetLabels(map[string]string{fleetLabel: "true"})
	return server, obj
}

// createWorkloads creates n workloads at once (16 at a time over all API servers).
func (f *fleet) createWorkloads(ctx context.Context, prefix string, n int, seed uint64) error {
	for _, c := range f.clients {
		for k := range namespaces {
			if err := env.EnsureNamespace(ctx, c, fmt.Sprintf("fleet-%d", k)); err != nil {
				return err
			}
		}
	}
	r := rand.New(rand.NewPCG(seed, 9))
	type job struct {
		server int
		obj    client.Object
	}
	jobs := make([]job, n)
	for i := range n {
		images := f.pick(r)
		server, obj := f.workloadObject(prefix, i, images)
		jobs[i] = job{server, obj}
		f.mu.Lock()
		for _, img := range images {
			f.used[server][img] = true
		}
		f.perServer[server]++
		f.created++
		f.mu.Unlock()
	}
	ch := make(chan job)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				if err := f.clients[j.server].Create(ctx, j.obj); err != nil {
					select {
					case errs <- fmt.Errorf("creating %s/%s in %s: %w", j.obj.GetNamespace(), j.obj.GetName(), f.e.Members[j.server].Name, err):
					default:
					}
				}
			}
		}()
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	return nil
}

// progress is how far the fleet has converged.
type progress struct {
	images, ready, workloads, patched int
}

func (p progress) done() bool {
	return p.images > 0 && p.ready == p.images && p.workloads > 0 && p.patched == p.workloads
}

// status reads every API server: the images its workloads use that have a Ready ClonedImage,
// and its fleet workloads whose every container runs from the backup registry.
func (f *fleet) status(ctx context.Context) (progress, error) {
	var p progress
	for i, c := range f.clients {
		f.mu.Lock()
		used := make([]string, 0, len(f.used[i]))
		for img := range f.used[i] {
			used = append(used, img)
		}
		f.mu.Unlock()
		var cis v1alpha1.ClonedImageList
		if err := c.List(ctx, &cis); err != nil {
			return p, err
		}
		ready := map[string]bool{}
		for _, ci := range cis.Items {
			if ci.IsReady() {
				ready[ci.Spec.Source] = true
			}
		}
		for _, img := range used {
			p.images++
			if ready[img] {
				p.ready++
			}
		}
		var deps appsv1.DeploymentList
		if err := c.List(ctx, &deps, client.HasLabels{fleetLabel}); err != nil {
			return p, err
		}
		var dss appsv1.DaemonSetList
		if err := c.List(ctx, &dss, client.HasLabels{fleetLabel}); err != nil {
			return p, err
		}
		for _, d := range deps.Items {
			p.workloads++
			if f.patched(&d.Spec.Template.Spec) {
				p.patched++
			}
		}
		for _, d := range dss.Items {
			p.workloads++
			if f.patched(&d.Spec.Template.Spec) {
				p.patched++
			}
		}
	}
	return p, nil
}

// patched says every container of spec runs from the backup registry.
func (f *fleet) patched(spec *corev1.PodSpec) bool {
	n := 0
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for _, c := range cs {
			if !strings.HasPrefix(c.Image, f.e.BackupRegistry+"/") {
				return false
			}
			n++
		}
	}
	return n > 0
}

// waitConverged polls every half second (lists of thousands of objects: not every 100ms)
// until every image is Ready and every workload patched.
func (f *fleet) waitConverged(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	lastLog := time.Now()
	var p progress
	for {
		var err error
		p, err = f.status(ctx)
		if err == nil && p.done() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not converged within %s: %d/%d images Ready, %d/%d workloads patched (last error: %v)", timeout, p.ready, p.images, p.patched, p.workloads, err)
		}
		if time.Since(lastLog) > 10*time.Second {
			f.logf("  %d/%d images Ready, %d/%d workloads patched (load %s)", p.ready, p.images, p.patched, p.workloads, loadavg())
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// usedDigests returns the distinct digests the fleet's workloads run.
func (f *fleet) usedDigests() map[string]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]bool{}
	for _, u := range f.used {
		for img := range u {
			out[f.digests[img]] = true
		}
	}
	return out
}

// expectedCached is how many workloads the hub's caches should hold: every registration caches
// the workloads on its API server (registration j is on API server j mod APIServers).
func (f *fleet) expectedCached() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for j := range f.cfg.Clusters {
		n += f.perServer[j%len(f.perServer)]
	}
	return n
}
