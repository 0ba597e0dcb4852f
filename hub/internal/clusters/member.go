package clusters

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
)

// ErrNotAnswering is returned, wrapped with the member's name, by every call of a member's
// client while the member does not answer: its last probe or one of its requests timed out.
// The call is not sent; the next successful probe lets calls through again.
var ErrNotAnswering = errors.New("the member's API server is not answering")

// ErrDisconnected is returned, wrapped, by calls of a member that has been disconnected, and is
// the cause of the context of calls it cancelled.
var ErrDisconnected = errors.New("the member was disconnected")

// health is what a member's clients know of whether it answers. It is shared by the member's
// calls and its connection's probes.
type health struct {
	name string
	ctx  context.Context // the member's: cancelled (cause ErrDisconnected) when it disconnects
	kick chan struct{}   // asks the connection for a probe now

	mu      sync.Mutex
	stalled error // non-nil while the member does not answer
}

func newHealth(ctx context.Context, name string) *health {
	return &health{name: name, ctx: ctx, kick: make(chan struct{}, 1)}
}

// disconnected returns ErrDisconnected, wrapped, once the member disconnected.
func (h *health) disconnected() error {
	if context.Cause(h.ctx) != nil {
		return fmt.Errorf("cluster %s: %w", h.name, ErrDisconnected)
	}
	return nil
}

// err returns why calls must not be sent now, or nil.
func (h *health) err() error {
	if err := h.disconnected(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stalled != nil {
		return fmt.Errorf("cluster %s: %w (%v); retried once it answers a probe", h.name, ErrNotAnswering, h.stalled)
	}
	return nil
}

// setStalled records that the member does not answer (cause), or answers again (nil).
func (h *health) setStalled(cause error) {
	h.mu.Lock()
	h.stalled = cause
	h.mu.Unlock()
}

// observe looks at a call's outcome: a request that timed out marks the member as not
// answering and asks for a probe at once, so that the fleet's other calls to it fail fast
// instead of each waiting out its own timeout.
func (h *health) observe(callCtx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if context.Cause(callCtx) == ErrDisconnected {
		return fmt.Errorf("cluster %s: %w: %w", h.name, ErrDisconnected, err)
	}
	if callCtx.Err() == nil && utilnet.IsTimeout(err) {
		// The request's own timeout (rest.Config.Timeout), not the caller's context: the
		// member did not answer.
		h.setStalled(fmt.Errorf("a request timed out: %w", err))
		select {
		case h.kick <- struct{}{}:
		default:
		}
	}
	return err
}

// call runs f bound to the member: refused while the member does not answer, cancelled when it
// disconnects.
func (h *health) call(ctx context.Context, f func(context.Context) error) error {
	if err := h.err(); err != nil {
		return err
	}
	return h.bound(ctx, f)
}

// bound runs f with a context cancelled when the member disconnects.
func (h *health) bound(ctx context.Context, f func(context.Context) error) error {
	if err := h.disconnected(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(h.ctx, func() { cancel(ErrDisconnected) })
	defer func() {
		stop()
		cancel(nil)
	}()
	return h.observe(ctx, f(ctx))
}

// memberCluster is a member's cluster.Cluster whose client and API reader are bound to the
// member (health.call); everything else is the cluster's own.
type memberCluster struct {
	cluster.Cluster
	h      *health
	client client.Client
	reader client.Reader
}

func bindCluster(c cluster.Cluster, h *health) cluster.Cluster {
	return &memberCluster{
		Cluster: c,
		h:       h,
		client:  &boundClient{Client: c.GetClient(), h: h},
		reader:  &boundReader{Reader: c.GetAPIReader(), h: h},
	}
}

func (m *memberCluster) GetClient() client.Client    { return m.client }
func (m *memberCluster) GetAPIReader() client.Reader { return m.reader }

type boundReader struct {
	client.Reader
	h *health
}

func (r *boundReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return r.h.call(ctx, func(ctx context.Context) error { return r.Reader.Get(ctx, key, obj, opts...) })
}

func (r *boundReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.h.call(ctx, func(ctx context.Context) error { return r.Reader.List(ctx, list, opts...) })
}

// boundClient binds every call of a member's client.Client. Its reads are mostly answered by
// the cache (the workload kinds, ClonedImages), which never waits on the member: they are not
// refused while the member does not answer, so that a reconcile that reads every member's cache
// still serves the others; the uncached ones (Secrets) are bounded by rest.Config.Timeout.
// Writes are refused while the member does not answer.
type boundClient struct {
	client.Client
	h *health
}

func (c *boundClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return c.h.bound(ctx, func(ctx context.Context) error { return c.Client.Get(ctx, key, obj, opts...) })
}

func (c *boundClient) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return c.h.bound(ctx, func(ctx context.Context) error { return c.Client.List(ctx, list, opts...) })
}

func (c *boundClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	return c.h.call(ctx, func(ctx context.Context) error { return c.Client.Create(ctx, obj, opts...) })
}

func (c *boundClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	return c.h.call(ctx, func(ctx context.Context) error { return c.Client.Delete(ctx, obj, opts...) })
}

func (c *boundClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	return c.h.call(ctx, func(ctx context.Context) error { return c.Client.Update(ctx, obj, opts...) })
}

func (c *boundClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	return c.h.call(ctx, func(ctx context.Context) error { return c.Client.Patch(ctx, obj, patch, opts...) })
}

func (c *boundClient) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	return c.h.call(ctx, func(ctx context.Context) error { return c.Client.Apply(ctx, obj, opts...) })
}

func (c *boundClient) DeleteAllOf(ctx context.Context, obj client.Object, opts ...client.DeleteAllOfOption) error {
	return c.h.call(ctx, func(ctx context.Context) error { return c.Client.DeleteAllOf(ctx, obj, opts...) })
}

func (c *boundClient) Status() client.SubResourceWriter {
	return &boundSubResource{SubResourceClient: c.Client.SubResource("status"), h: c.h}
}

func (c *boundClient) SubResource(subResource string) client.SubResourceClient {
	return &boundSubResource{SubResourceClient: c.Client.SubResource(subResource), h: c.h}
}

type boundSubResource struct {
	client.SubResourceClient
	h *health
}

func (s *boundSubResource) Get(ctx context.Context, obj, sub client.Object, opts ...client.SubResourceGetOption) error {
	return s.h.call(ctx, func(ctx context.Context) error { return s.SubResourceClient.Get(ctx, obj, sub, opts...) })
}

func (s *boundSubResource) Create(ctx context.Context, obj, sub client.Object, opts ...client.SubResourceCreateOption) error {
	return s.h.call(ctx, func(ctx context.Context) error { return s.SubResourceClient.Create(ctx, obj, sub, opts...) })
}

func (s *boundSubResource) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	return s.h.call(ctx, func(ctx context.Context) error { return s.SubResourceClient.Update(ctx, obj, opts...) })
}

func (s *boundSubResource) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	return s.h.call(ctx, func(ctx context.Context) error { return s.SubResourceClient.Patch(ctx, obj, patch, opts...) })
}

func (s *boundSubResource) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	return s.h.call(ctx, func(ctx context.Context) error { return s.SubResourceClient.Apply(ctx, obj, opts...) })
}
