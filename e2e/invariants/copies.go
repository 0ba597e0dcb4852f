package invariants

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

var manifestPath = regexp.MustCompile(`^/v2/(.+)/manifests/([^/?]+)$`)

// copies counts the manifest PUTs the backup registry accepted (2xx) since Start, per
// repository@digest: a PUT by digest for that digest, a PUT by tag for the digest the tag
// names now. A refused PUT, or one that never reached the registry, landed nothing and is
// not a copy; so a retry after such a PUT is the first copy, not a second. The PUT of a digest
// tag (digest-sha256-<hex>) that the copy engine adds beside a copy's own tag is part of that
// copy; it counts only for a source pinned by digest alone, whose backup's only tag it is. The
// PUT of a referrers index (sha256-<hex>, the referrers tag schema's tag) is not a copy.
func (w *Watcher) copies(ctx context.Context) (map[string]int, error) {
	reqs, err := w.in.Requests()
	if err != nil {
		return nil, fmt.Errorf("reading the backup registry's requests: %w", err)
	}
	if w.start <= len(reqs) {
		reqs = reqs[w.start:]
	}
	out := map[string]int{}
	digestTagged := map[string]int{}
	tags := map[string]string{} // repository:tag -> digest
	for _, q := range reqs {
		if q.Method != "PUT" || q.Status < 200 || q.Status > 299 {
			continue
		}
		m := manifestPath.FindStringSubmatch(q.Path)
		if m == nil {
			continue
		}
		repo, reference := m[1], m[2]
		if hex, ok := strings.CutPrefix(reference, "digest-sha256-"); ok && len(hex) == 64 {
			digestTagged[repo+"@sha256:"+hex]++
			continue
		}
		if hex, ok := strings.CutPrefix(reference, "sha256-"); ok && len(hex) == 64 {
			continue
		}
		digest := reference
		if !strings.HasPrefix(reference, "sha256:") {
			key := repo + ":" + reference
			d, ok := tags[key]
			if !ok {
				ref, err := name.ParseReference(w.in.Backup.Host+"/"+key, name.Insecure)
				if err != nil {
					return nil, fmt.Errorf("parsing %s: %w", key, err)
				}
				desc, err := remote.Head(ref, w.checker.options(ctx)...)
				if err != nil {
					return nil, fmt.Errorf("resolving %s in the backup registry: %w", ref, err)
				}
				d = desc.Digest.String()
				tags[key] = d
			}
			digest = d
		}
		out[repo+"@"+digest]++
	}
	for k, n := range digestTagged {
		if out[k] == 0 {
			out[k] = n
		}
	}
	return out, nil
}
