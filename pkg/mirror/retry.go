package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// retryTransport retries requests that failed for a reason that may pass: a 5xx, a 408 or 429,
// a reset or closed connection, a timeout. It only retries what can be sent again unchanged:
// requests without a body, or whose body can be recreated (GetBody). PATCH requests, which
// append a chunk to a blob upload, are never replayed here, since the registry may have kept
// part of the first attempt; go-containerregistry restarts the whole blob upload instead (see
// retryWholeUpload).
type retryTransport struct {
	inner       http.RoundTripper
	maxAttempts int
	baseDelay   time.Duration
	maxDelay    time.Duration
	clock       Clock
	obs         Observer
	log         logr.Logger
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !replayable(req) {
		return t.inner.RoundTrip(req)
	}
	ctx := req.Context()
	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 && hasBody(req) {
			body, err := req.GetBody()
			if err != nil {
				return nil, fmt.Errorf("recreating the body of %s %s for a retry: %w", req.Method, req.URL.Redacted(), err)
			}
			r = req.Clone(ctx)
			r.Body = body
		}
		resp, err := t.inner.RoundTrip(r)
		if ctx.Err() != nil {
			// The caller gave up: whatever happened is not worth another attempt.
			return resp, err
		}
		reason, retry := retryReason(resp, err)
		if !retry {
			return resp, err
		}
		wait := t.backoff(attempt)
		if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
			after, ok := parseRetryAfter(resp.Header.Get("Retry-After"), t.clock.Now())
			if (ok && after > t.maxDelay) || attempt >= t.maxAttempts {
				// Waiting here would hold a worker for longer than we promised: let the caller
				// requeue the work instead.
				rl := &RateLimitedError{RetryAfter: after, Registry: req.URL.Host, Limit: parseRateLimit(resp.Header)}
				drain(resp)
				return nil, rl
			}
			if ok {
				wait = after
			}
		}
		if attempt >= t.maxAttempts {
			return resp, err
		}
		if resp != nil {
			drain(resp)
		}
		if t.obs.Retry != nil {
			t.obs.Retry(req.Method, req.URL.Host, attempt, reason)
		}
		t.log.V(1).Info("Retrying registry request", "method", req.Method, "host", req.URL.Host, "path", req.URL.Path,
			"attempt", attempt, "reason", reason, "wait", wait.String())
		select {
		case <-t.clock.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// backoff is the wait after the given failed attempt: baseDelay doubled per attempt, capped at
// maxDelay, of which the upper half is random so that many clients do not retry in step.
func (t *retryTransport) backoff(attempt int) time.Duration {
	d := t.baseDelay
	for i := 1; i < attempt && d < t.maxDelay; i++ {
		d *= defaultRetryBackoffMultiple
	}
	d = min(d, t.maxDelay)
	if d <= 0 {
		return 0
	}
	half := time.Duration(float64(d) * defaultRetryJitterFraction)
	return d - half + rand.N(half+1)
}

// replayable reports whether sending req again has the same effect as sending it once.
func replayable(req *http.Request) bool {
	if req.Method == http.MethodPatch {
		return false
	}
	return !hasBody(req) || req.GetBody != nil
}

func hasBody(req *http.Request) bool { return req.Body != nil && req.Body != http.NoBody }

// retryReason says why a response or error deserves another attempt.
func retryReason(resp *http.Response, err error) (string, bool) {
	if err != nil {
		if retryableError(err) {
			return err.Error(), true
		}
		return "", false
	}
	if retryableStatus(resp.StatusCode) {
		return resp.Status, true
	}
	return "", false
}

func retryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// retryableError is a connection that broke or timed out. Refused connections are retried too:
// a registry that restarts refuses connections for a moment.
func retryableError(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// drain reads a little of a response we discard so that its connection can be reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64*1024))
	_ = resp.Body.Close()
}

// retryWholeUpload is go-containerregistry's retry predicate. go-containerregistry retries
// three things with it: requests (in its own transport), whole blob uploads and manifest PUTs.
// Requests are already retried by retryTransport, so this answers true only for what
// retryTransport cannot replay, to avoid multiplying attempts: a blob upload whose PATCH
// failed (its chunk may be half-stored, so the upload restarts from the existence check), or
// whose upload session the registry lost (BLOB_UPLOAD_UNKNOWN, e.g. after a commit PUT whose
// response was lost).
func retryWholeUpload(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var rl *RateLimitedError
	if errors.As(err, &rl) {
		return false
	}
	var te *transport.Error
	if errors.As(err, &te) {
		for _, d := range te.Errors {
			if d.Code == transport.BlobUploadUnknownErrorCode || d.Code == transport.BlobUploadInvalidErrorCode {
				return true
			}
		}
		return te.Request != nil && te.Request.Method == http.MethodPatch && retryableStatus(te.StatusCode)
	}
	var ue *url.Error
	// http.Client names the method in Op ("Patch"); a failed PATCH is usually a broken
	// connection to either registry, as the body streams from the source.
	return errors.As(err, &ue) && ue.Op == "Patch"
}

// uploadBackoff is go-containerregistry's backoff for whole blob uploads, matching WithRetry.
func (o *options) uploadBackoff() remote.Backoff {
	return remote.Backoff{
		Duration: o.baseDelay,
		Factor:   defaultRetryBackoffMultiple,
		Jitter:   defaultRetryJitterFraction,
		Steps:    o.maxAttempts,
		Cap:      o.maxDelay,
	}
}
