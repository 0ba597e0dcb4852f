package invariants

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// errAbsent is a definite answer that something is not in the backup registry; any other
// error (a registry down, a reset) is retried.
type errAbsent struct{ what string }

func (e errAbsent) Error() string { return e.what }

// checker verifies backups in the registry itself, digest by digest, and remembers the
// digests it has verified completely.
type checker struct {
	reg       Registry
	aliasHost string // the host of BACKUP_REGISTRY, replaced by reg.Host

	mu       sync.Mutex
	verified map[string]bool // repository@digest
}

func newChecker(reg Registry, backupRegistry string) *checker {
	host, _, _ := strings.Cut(backupRegistry, "/")
	return &checker{reg: reg, aliasHost: host, verified: map[string]bool{}}
}

func (c *checker) verifiedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.verified)
}

func (c *checker) options(ctx context.Context) []remote.Option {
	auth := c.reg.Auth
	if auth == nil {
		auth = authn.Anonymous
	}
	return []remote.Option{remote.WithContext(ctx), remote.WithAuth(auth), remote.WithTransport(c.reg.Transport)}
}

// direct turns a reference under BACKUP_REGISTRY into one at the registry itself.
func (c *checker) direct(image string) (name.Reference, error) {
	if c.aliasHost != "" && strings.HasPrefix(image, c.aliasHost+"/") {
		image = c.reg.Host + strings.TrimPrefix(image, c.aliasHost)
	}
	return name.ParseReference(image, name.Insecure)
}

// verify checks that image (optionally expected to have digest want) is fully present: its
// manifest, and, for a digest not verified before, every child manifest and every blob.
func (c *checker) verify(ctx context.Context, image, want string) error {
	ref, err := c.direct(image)
	if err != nil {
		return errAbsent{fmt.Sprintf("invalid reference %q: %v", image, err)}
	}
	desc, err := remote.Get(ref, c.options(ctx)...)
	if err != nil {
		return classify(err, "manifest "+ref.String())
	}
	if want != "" && desc.Digest.String() != want {
		return errAbsent{fmt.Sprintf("%s serves digest %s, the ClonedImage says %s", ref, desc.Digest, want)}
	}
	return c.verifyManifest(ctx, ref.Context(), desc.Digest, desc.MediaType, desc.Manifest)
}

func (c *checker) isVerified(repo name.Repository, d v1.Hash) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.verified[repo.String()+"@"+d.String()]
}

func (c *checker) verifyManifest(ctx context.Context, repo name.Repository, d v1.Hash, mt types.MediaType, raw []byte) error {
	if c.isVerified(repo, d) {
		return nil
	}
	switch {
	case mt.IsIndex():
		var idx v1.IndexManifest
		if err := json.Unmarshal(raw, &idx); err != nil {
			return errAbsent{fmt.Sprintf("index %s@%s does not parse: %v", repo, d, err)}
		}
		for _, m := range idx.Manifests {
			if c.isVerified(repo, m.Digest) {
				continue
			}
			child, err := remote.Get(repo.Digest(m.Digest.String()), c.options(ctx)...)
			if err != nil {
				return classify(err, fmt.Sprintf("child manifest %s@%s of index %s", repo, m.Digest, d))
			}
			if err := c.verifyManifest(ctx, repo, m.Digest, child.MediaType, child.Manifest); err != nil {
				return err
			}
		}
	case mt.IsImage():
		var m v1.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return errAbsent{fmt.Sprintf("manifest %s@%s does not parse: %v", repo, d, err)}
		}
		blobs := append([]v1.Descriptor{m.Config}, m.Layers...)
		for _, b := range blobs {
			if err := c.headBlob(ctx, repo, b.Digest); err != nil {
				return fmt.Errorf("blob of %s@%s: %w", repo, d, err)
			}
		}
	}
	c.mu.Lock()
	c.verified[repo.String()+"@"+d.String()] = true
	c.mu.Unlock()
	return nil
}

func (c *checker) headBlob(ctx context.Context, repo name.Repository, d v1.Hash) error {
	auth := c.reg.Auth
	if auth == nil {
		auth = authn.Anonymous
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, c.reg.Transport, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return fmt.Errorf("authenticating to %s: %w", repo.Registry, err)
	}
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", repo.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), d)
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: rt, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("HEAD %s: %w", u, err)
	}
	_ = resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusNotFound:
		return errAbsent{fmt.Sprintf("blob %s@%s is missing", repo, d)}
	default:
		return fmt.Errorf("HEAD %s: %s", u, resp.Status)
	}
}

// classify makes a 404 (MANIFEST_UNKNOWN, NAME_UNKNOWN, BLOB_UNKNOWN) an errAbsent.
func classify(err error, what string) error {
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return errAbsent{what + " is missing"}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// check is the verification of one backup reference, retried until it has a definite answer.
type check struct {
	ref, cluster, object string
	cancel               context.CancelFunc

	mu   sync.Mutex
	done bool
	err  error
}

func (c *check) finished() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done
}

func (c *check) lastErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *check) stop() { c.cancel() }

// startCheck verifies ref (with digest want, when known) in the background, the first time
// it is seen, retrying while the registry gives no definite answer (down, resets, 5xx).
func (w *Watcher) startCheck(ref, want, cluster, object string) {
	key := ref + "|" + want
	w.mu.Lock()
	if _, ok := w.checks[key]; ok {
		w.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &check{ref: ref, cluster: cluster, object: object, cancel: cancel}
	w.checks[key] = c
	w.mu.Unlock()
	go func() {
		for ctx.Err() == nil {
			err := w.checker.verify(ctx, ref, want)
			var absent errAbsent
			if err == nil || errors.As(err, &absent) {
				if err != nil {
					w.violate("incomplete/"+key, Violation{Kind: IncompleteBackup, Cluster: cluster, Object: object,
						Detail: fmt.Sprintf("references %s: %v", ref, err)})
				}
				c.mu.Lock()
				c.done, c.err = true, err
				c.mu.Unlock()
				return
			}
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
}
