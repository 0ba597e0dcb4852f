package images

import (
	"context"
	"sync"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/imageref"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// IndexImages is the index (clusters.AddIndex), on every kind of clusters.WatchedKinds in a
// member cache (the workload kinds and Pods), of the canonical sources a workload uses: its current images and the originals the agent recorded when it
// pointed the workload at backups (so a rewritten workload still counts as using its source).
const IndexImages = "image-cloner.io/images"

// Sources returns the canonical references of the images obj uses, for IndexImages. Images
// that do not parse are left out: the kubelet could not pull them either.
func Sources(obj client.Object) []string {
	seen := map[string]bool{}
	var out []string
	add := func(image string) {
		ref, err := imageref.Parse(image)
		if err != nil {
			return
		}
		if s := ref.String(); !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	var images, originals []string
	switch o := obj.(type) {
	case *clusters.Workload:
		images, originals = o.Images(), o.Originals()
	case *clusters.Pod:
		images, originals = o.Images(), o.Originals()
	default:
		images = workload.Images(obj)
		if recorded, err := workload.Originals(obj); err == nil {
			for _, image := range recorded {
				originals = append(originals, image)
			}
		}
	}
	for _, image := range images {
		add(image)
	}
	for _, image := range originals {
		add(image)
	}
	return out
}

// mapToImages maps a workload or a ClonedImage onto the requests of its images.
func mapToImages(_ context.Context, obj client.Object) []reconcile.Request {
	var sources []string
	if ci, ok := obj.(*v1alpha1.ClonedImage); ok {
		ref, err := imageref.Parse(ci.Spec.Source)
		if err != nil {
			return nil
		}
		sources = []string{ref.String()}
	} else {
		sources = Sources(obj)
	}
	reqs := make([]reconcile.Request, 0, len(sources))
	for _, s := range sources {
		reqs = append(reqs, request(s))
	}
	return reqs
}

func request(source string) reconcile.Request {
	return reconcile.Request{NamespacedName: client.ObjectKey{Name: source}}
}

// fleetSource is the controller's one source: it only captures the workqueue, which member
// event handlers then feed (see the package documentation).
type fleetSource struct {
	once  sync.Once
	ready chan struct{}
	queue workqueue.TypedRateLimitingInterface[reconcile.Request]
}

func newFleetSource() *fleetSource { return &fleetSource{ready: make(chan struct{})} }

func (s *fleetSource) Start(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	s.once.Do(func() {
		s.queue = q
		close(s.ready)
	})
	return nil
}

func (s *fleetSource) String() string { return "member clusters" }

// wait returns the queue once the controller started, or nil if ctx ends first.
func (s *fleetSource) wait(ctx context.Context) workqueue.TypedRateLimitingInterface[reconcile.Request] {
	select {
	case <-s.ready:
		return s.queue
	case <-ctx.Done():
		return nil
	}
}

// Prepare implements clusters.Listener: it adds IndexImages to every watched kind, and
// IndexOwner to Pods and Jobs.
func (r *Reconciler) Prepare(c cluster.Cluster) error {
	ctx := context.Background()
	for _, obj := range clusters.WatchedKinds() {
		if err := clusters.AddIndex(ctx, c, obj, IndexImages, Sources); err != nil {
			return err
		}
	}
	for _, obj := range []client.Object{&corev1.Pod{}, &batchv1.Job{}} {
		if err := clusters.AddIndex(ctx, c, obj, IndexOwner, ownerKey); err != nil {
			return err
		}
	}
	return nil
}

// Connected implements clusters.Listener: it feeds the member's events into the queue until ctx
// ends.
func (r *Reconciler) Connected(ctx context.Context, m *clusters.Member) {
	go func() {
		q := r.source.wait(ctx)
		if q == nil {
			return
		}
		h := handler.EnqueueRequestsFromMapFunc(mapToImages)
		for _, obj := range clusters.CachedKinds() {
			inf, err := m.Cluster.GetCache().GetInformer(ctx, obj)
			if err != nil {
				r.Log.Error(err, "Watching member", "cluster", m.Name)
				continue
			}
			reg, err := inf.AddEventHandler(eventHandler(ctx, r.withOwnedPods(m, h), q))
			if err != nil {
				r.Log.Error(err, "Watching member", "cluster", m.Name)
				continue
			}
			// No goroutine waits for the end: a registration's kinds would each keep one.
			context.AfterFunc(ctx, func() { _ = inf.RemoveEventHandler(reg) })
		}
	}()
}

// Disconnected implements clusters.Listener. The handlers go with the member's context.
func (r *Reconciler) Disconnected(string) {}

// eventHandler adapts a controller-runtime handler to an informer's.
func eventHandler(ctx context.Context, h handler.EventHandler, q workqueue.TypedRateLimitingInterface[reconcile.Request]) toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			if obj, ok := o.(client.Object); ok {
				h.Create(ctx, event.CreateEvent{Object: obj}, q)
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(client.Object)
			n, ok2 := newObj.(client.Object)
			if ok1 && ok2 {
				h.Update(ctx, event.UpdateEvent{ObjectOld: o, ObjectNew: n}, q)
			}
		},
		DeleteFunc: func(o any) {
			if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if obj, ok := o.(client.Object); ok {
				h.Delete(ctx, event.DeleteEvent{Object: obj}, q)
			}
		},
	}
}

// withOwnedPods wraps h: on a workload's update that changes its opt-out label, it also
// enqueues the images of the Pods it owns (optOutChanged).
func (r *Reconciler) withOwnedPods(m *clusters.Member, h handler.EventHandler) handler.EventHandler {
	return handler.Funcs{
		CreateFunc:  h.Create,
		DeleteFunc:  h.Delete,
		GenericFunc: h.Generic,
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			h.Update(ctx, e, q)
			sources, err := optOutChanged(ctx, m, e.ObjectOld, e.ObjectNew)
			if err != nil {
				// The Pods' own next event or the resync brings their images back.
				r.Log.Error(err, "Finding the Pods of a workload whose opt-out label changed", "cluster", m.Name)
			}
			for _, s := range sources {
				q.Add(request(s))
			}
		},
	}
}
