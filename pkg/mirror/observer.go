package mirror

import (
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// Observer holds hooks the Mirror calls as it works, e.g. to export Prometheus metrics. Every
// field is optional. Hooks are called synchronously from the goroutine doing the work, often
// concurrently, so they must be quick and safe for concurrent use.
type Observer struct {
	// CopyStarted is called when Copy starts moving content, after the caches and the
	// destination said the image is not there yet.
	CopyStarted func(src, dst name.Reference)
	// CopyEnded is called once for every CopyStarted, when that copy has stopped moving
	// content and before its concurrency slot is released, so Started/Ended bracket exactly
	// the copies counted against WithMaxConcurrentCopies.
	CopyEnded func(src, dst name.Reference, err error)
	// CopyFinished is called when every Copy call returns, whatever the outcome.
	CopyFinished func(src, dst name.Reference, result Result, err error, duration time.Duration)
	// Request is called for every HTTP request attempt, retries included. Status is 0 when no
	// response arrived.
	Request func(method, host string, status int, duration time.Duration)
	// Retry is called before a failed request is tried again, with the attempt that failed
	// (1 for the first) and why.
	Retry func(method, host string, attempt int, reason string)
	// CacheHit and CacheMiss are called for each lookup of the presence cache.
	CacheHit  func(dst name.Reference)
	CacheMiss func(dst name.Reference)
	// BytesUploaded is called with the size of each blob uploaded to the destination registry.
	BytesUploaded func(n int64)
	// BytesMounted is called with the size of each blob mounted from another repository of the
	// destination registry instead of being uploaded.
	BytesMounted func(n int64)
	// RateLimit is called for every response that carries rate limit headers.
	RateLimit func(registry string, limit RateLimit)
}
