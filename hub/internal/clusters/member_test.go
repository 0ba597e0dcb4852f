package clusters

import (
	"context"
	"errors"
	"net"
	"net/url"
	"testing"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"

	"github.com/image-cloner/image-cloner/internal/registration"
)

// timeoutErr is what net/http returns when http.Client.Timeout (rest.Config.Timeout) expires.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "Client.Timeout exceeded while awaiting headers" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

// TestHealth_aTimedOutRequestStopsFurtherCallsUntilAProbeAnswers covers what decides whether a
// member's calls are sent: only the request's own timeout marks the member as not answering (not
// a caller that gave up, not an API error), and a disconnect refuses and cancels.
func TestHealth_aTimedOutRequestStopsFurtherCallsUntilAProbeAnswers(t *testing.T) {
	for _, tc := range []struct {
		name        string
		err         error
		callerGone  bool
		wantStalled bool
	}{
		{name: "request timed out", err: &url.Error{Op: "Patch", URL: "https://m", Err: timeoutErr{}}, wantStalled: true},
		{name: "caller's context ended", err: context.Canceled, callerGone: true},
		{name: "an answer, even an error", err: errors.New("conflict")},
		{name: "success"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			h := newHealth(context.Background(), "m1")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			err := h.call(ctx, func(ctx context.Context) error {
				if tc.callerGone {
					cancel()
				}
				return tc.err
			})
			g.Expect(errors.Is(err, tc.err) || err == tc.err).To(BeTrue())
			if !tc.wantStalled {
				g.Expect(h.err()).To(Succeed())
				return
			}
			g.Expect(h.err()).To(MatchError(ErrNotAnswering))
			g.Expect(h.kick).To(HaveLen(1), "a probe is asked for at once")
			sent := false
			g.Expect(h.call(context.Background(), func(context.Context) error { sent = true; return nil })).To(MatchError(ErrNotAnswering))
			g.Expect(sent).To(BeFalse(), "refused without being sent")
			h.setStalled(nil) // a probe answered
			g.Expect(h.call(context.Background(), func(context.Context) error { return nil })).To(Succeed())
		})
	}
}

func TestHealth_disconnectCancelsCallsInFlight(t *testing.T) {
	g := NewWithT(t)
	mctx, disconnect := context.WithCancelCause(context.Background())
	h := newHealth(mctx, "m1")
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- h.bound(context.Background(), func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	<-started
	disconnect(ErrDisconnected)
	g.Eventually(done).Should(Receive(MatchError(ErrDisconnected)))
	g.Expect(h.call(context.Background(), func(context.Context) error { return nil })).To(MatchError(ErrDisconnected))
}

func TestConnect_boundsRequestsButNotTheCachesWatches(t *testing.T) {
	g := NewWithT(t)
	r := New(nil, nil, logr.Discard(), Options{})
	r.connect(secret("a"), &registration.Registration{Cluster: "a", Config: &rest.Config{Host: "https://member.example"}}, "h1")
	g.Expect(r.conns["hub/a"].config.Timeout.Seconds()).To(BeNumerically("==", 10), "cluster-api's ClusterCache default")
	// The reflector asks the server to end a watch within 5 to 10 minutes; the cache's client
	// must outlast that, or every watch is cut (client-go applies http.Client.Timeout to the
	// whole stream).
	g.Expect(cacheRequestTimeout.Minutes()).To(BeNumerically(">", 10))
	g.Expect(r.conns["hub/a"].namespace).To(Equal("image-cloner-system"))
}
