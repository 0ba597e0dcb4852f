package clusters

import (
	"context"
	"fmt"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
)

// The hub reads its member caches through the informers' own indexers, not the controller-runtime
// client: the workload kinds are cached as *Workload (ProjectWorkload), which the client's typed
// List and Get cannot return. Every object these reads return is the cache's own: read it,
// never modify it (DeepCopyObject first).

// IndexFunc is an index of a member cache: the values obj is found under.
type IndexFunc func(obj client.Object) []string

// AddIndex adds the index name to the informer of kind in c, before c's cache starts (a
// Listener's Prepare).
func AddIndex(ctx context.Context, c cluster.Cluster, kind client.Object, name string, f IndexFunc) error {
	inf, err := c.GetCache().GetInformer(ctx, kind, cache.BlockUntilSynced(false))
	if err != nil {
		return fmt.Errorf("indexing %T by %s: %w", kind, name, err)
	}
	err = inf.AddIndexers(toolscache.Indexers{name: func(o any) ([]string, error) {
		obj, ok := o.(client.Object)
		if !ok {
			return nil, nil
		}
		return f(obj), nil
	}})
	if err != nil {
		return fmt.Errorf("indexing %T by %s: %w", kind, name, err)
	}
	return nil
}

// indexed is what controller-runtime's informers are underneath (client-go
// SharedIndexInformers): their indexer can be read without copying an object.
type indexed interface {
	GetIndexer() toolscache.Indexer
}

// indexer returns the indexer of kind in m's cache. Like a read of the member's client, it is
// refused once the member disconnected, and waits for the cache to sync (bounded by ctx) unless
// opts say otherwise.
func (m *Member) indexer(ctx context.Context, kind client.Object, opts ...cache.InformerGetOption) (toolscache.Indexer, error) {
	if mc, ok := m.Cluster.(*memberCluster); ok {
		if err := mc.h.disconnected(); err != nil {
			return nil, err
		}
	}
	inf, err := m.Cluster.GetCache().GetInformer(ctx, kind, opts...)
	if err != nil {
		return nil, fmt.Errorf("reading the cache of %T: %w", kind, err)
	}
	ix, ok := inf.(indexed)
	if !ok {
		return nil, fmt.Errorf("reading the cache of %T: its informer is a %T, which has no indexer", kind, inf)
	}
	return ix.GetIndexer(), nil
}

// CachedObjects returns every object of kind in m's cache; opts may say not to wait for it to
// sync (cache.BlockUntilSynced(false)).
func (m *Member) CachedObjects(ctx context.Context, kind client.Object, opts ...cache.InformerGetOption) ([]client.Object, error) {
	ix, err := m.indexer(ctx, kind, opts...)
	if err != nil {
		return nil, err
	}
	return objectsOf(ix.List()), nil
}

// CachedByIndex returns the objects of kind in m's cache that index (added by AddIndex) holds
// under value.
func (m *Member) CachedByIndex(ctx context.Context, kind client.Object, index, value string) ([]client.Object, error) {
	ix, err := m.indexer(ctx, kind)
	if err != nil {
		return nil, err
	}
	items, err := ix.ByIndex(index, value)
	if err != nil {
		return nil, fmt.Errorf("reading the cache of %T by %s: %w", kind, index, err)
	}
	return objectsOf(items), nil
}

// CachedGet returns the object of kind namespace/name in m's cache, or nil if there is none.
func (m *Member) CachedGet(ctx context.Context, kind client.Object, namespace, name string) (client.Object, error) {
	ix, err := m.indexer(ctx, kind)
	if err != nil {
		return nil, err
	}
	key := name
	if namespace != "" {
		key = namespace + "/" + name
	}
	item, found, err := ix.GetByKey(key)
	if err != nil || !found {
		return nil, err
	}
	obj, _ := item.(client.Object)
	return obj, nil
}

// CachedCount returns how many objects of kind m's cache holds; it copies nothing.
func (m *Member) CachedCount(ctx context.Context, kind client.Object) (int, error) {
	ix, err := m.indexer(ctx, kind)
	if err != nil {
		return 0, err
	}
	return len(ix.ListKeys()), nil
}

func objectsOf(items []any) []client.Object {
	out := make([]client.Object, 0, len(items))
	for _, item := range items {
		if obj, ok := item.(client.Object); ok {
			out = append(out, obj)
		}
	}
	return out
}
