package clusters

import (
	"context"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// CacheSize is how many objects of one kind a member's cache holds.
type CacheSize struct {
	Cluster string
	Kind    string
	Objects int
}

// CacheSizes counts the objects in each Connected member's cache, by kind: what the hub's
// memory grows with. Every registration has a cache of its own, even when several point at the
// same API server. It copies no object (only the store's keys), so it is cheap enough for every
// metrics scrape.
func (r *Fleet) CacheSizes(ctx context.Context) []CacheSize {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var out []CacheSize
	for _, m := range r.Members() {
		for _, obj := range CachedKinds() {
			n, ok := cachedCount(ctx, m, obj)
			if !ok {
				continue
			}
			gvk, err := apiutil.GVKForObject(obj, r.scheme)
			if err != nil {
				continue
			}
			out = append(out, CacheSize{Cluster: m.Name, Kind: gvk.Kind, Objects: n})
		}
	}
	return out
}

// cachedCount returns how many objects of obj's kind m's cache holds, without waiting for it to
// sync; false when the informer is not there or the member is disconnecting.
func cachedCount(ctx context.Context, m *Member, obj client.Object) (int, bool) {
	ix, err := m.indexer(ctx, obj, cache.BlockUntilSynced(false))
	if err != nil {
		return 0, false
	}
	return len(ix.ListKeys()), true
}
