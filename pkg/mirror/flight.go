package mirror

import (
	"context"
	"errors"
	"sync"

	"golang.org/x/sync/singleflight"
)

// flights runs one function per key at a time and gives its result to every caller that asked
// for the same key meanwhile (golang.org/x/sync/singleflight).
//
// singleflight alone would run the function with the context of whichever caller came first,
// so that caller's cancellation (a reconcile timing out) would fail everyone waiting. Here the
// function gets a context of its own that is cancelled only when every waiting caller has gone.
type flights struct {
	group singleflight.Group

	mu    sync.Mutex
	byKey map[string]*flight
}

type flight struct {
	ctx     context.Context
	cancel  context.CancelFunc
	waiters int
}

// do returns fn's result for key. led is true when fn ran for this caller (rather than for
// another caller whose result this one shares).
func (f *flights) do(ctx context.Context, key string, fn func(context.Context) (any, error)) (v any, led bool, err error) {
	for {
		v, led, err = f.doOnce(ctx, key, fn)
		// A caller that joins a flight just as its last waiter leaves gets that flight's
		// cancellation, which is not its own: it starts a flight of its own instead.
		if !errors.Is(err, context.Canceled) || led || ctx.Err() != nil {
			return v, led, err
		}
	}
}

func (f *flights) doOnce(ctx context.Context, key string, fn func(context.Context) (any, error)) (v any, led bool, err error) {
	fl := f.join(ctx, key)
	ran := false
	ch := f.group.DoChan(key, func() (any, error) {
		ran = true
		return fn(fl.ctx)
	})
	select {
	case r := <-ch:
		f.leave(key, fl)
		return r.Val, ran, r.Err
	case <-ctx.Done():
		f.leave(key, fl)
		return nil, false, ctx.Err()
	}
}

func (f *flights) join(ctx context.Context, key string) *flight {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byKey == nil {
		f.byKey = map[string]*flight{}
	}
	fl, ok := f.byKey[key]
	if !ok {
		// Keep the caller's values (logger, tracing) but not its cancellation.
		c, cancel := context.WithCancel(context.WithoutCancel(ctx))
		fl = &flight{ctx: c, cancel: cancel}
		f.byKey[key] = fl
	}
	fl.waiters++
	return fl
}

func (f *flights) leave(key string, fl *flight) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl.waiters--
	if fl.waiters > 0 {
		return
	}
	fl.cancel()
	if f.byKey[key] == fl {
		delete(f.byKey, key)
	}
}
