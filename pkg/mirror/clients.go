package mirror

import (
	"context"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// repoClient is a Copy's authenticated transport to one repository of one side, made by
// transport.NewWithContext (a ping, and a token where the registry wants one), and the two
// clients built over it: the copy's Puller for that side, and the API client of its referrers
// (apiClient), which would otherwise each ping and authenticate on their own.
//
// The Puller is given the transport as go-containerregistry's transport.Wrapper, which it
// uses as it is: it neither pings again nor wraps it in its own retries, which a Puller's
// requests never used (remoteOptions leaves go-containerregistry only whole uploads to retry;
// the Mirror's transport inside retries every request). The Pusher keeps a transport of its
// own: it widens its token's scopes for cross-repository mounts, which a Wrapper cannot.
type repoClient struct {
	puller *remote.Puller
	api    *apiClient
}

// newRepoClient authenticates to repo with kc for scope (transport.PullScope or PushScope).
func (m *Mirror) newRepoClient(ctx context.Context, repo name.Repository, kc authn.Keychain, scope string) (*repoClient, error) {
	api, err := m.newAPIClient(ctx, repo, kc, scope)
	if err != nil {
		return nil, err
	}
	opts := append(m.remoteOptions(ctx, kc), remote.WithTransport(api.client.Transport))
	puller, err := remote.NewPuller(opts...)
	if err != nil {
		return nil, err
	}
	return &repoClient{puller: puller, api: api}, nil
}

// lazyRepoClient is a repoClient made on first use, so that a Copy the presence cache or the
// destination answers makes no request to the source. A failure is not kept: the next use tries
// again.
type lazyRepoClient struct {
	make func(context.Context) (*repoClient, error)

	mu sync.Mutex
	c  *repoClient
}

func (l *lazyRepoClient) get(ctx context.Context) (*repoClient, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.c == nil {
		c, err := l.make(ctx)
		if err != nil {
			return nil, err
		}
		l.c = c
	}
	return l.c, nil
}
