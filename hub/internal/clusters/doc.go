// Package clusters keeps the hub connected to its member clusters.
//
// A member is registered by a kubeconfig Secret in the hub's namespace (see internal/registration for
// the two conventions). The Reconciler turns each such Secret into a connection: creating it
// connects, changing its kubeconfig (a rotated credential, compared by hash) reconnects, deleting
// it disconnects. Every connection lives in its own goroutine, so the Reconciler never waits on
// a member and one slow or unreachable member never delays another.
//
// A connection is a controller-runtime cluster.Cluster whose cache holds only the workload kinds,
// Pods and ClonedImages (CachedKinds), with managed fields stripped; reads of any other kind go
// straight to the API server, and Secrets of members are never cached. Workloads and Pods (Pods
// outnumber workloads many times over) are cached as types of the hub's own, *Workload
// (ProjectWorkload) and *Pod (ProjectPod): Meta (names, UID, resourceVersion, owners, the
// opt-out label), container names and images (interned), the recorded originals, and for a
// Pod its phase and container statuses; a few hundred bytes where the typed object costs
// kilobytes (BenchmarkInformerWorkloads, BenchmarkInformerPods). The hub reads them through
// the Member's cached reads (CachedObjects, CachedByIndex, CachedGet, CachedCount, and the
// indexes AddIndex adds), not the controller-runtime client, whose typed Get and List cannot
// return them. Its client gets the QPS and burst the hub was
// given (client-go's default of 5 QPS is too low for a fleet). The connection probes the member's
// /readyz; after FailureThreshold failures in a row it stops the cache, tells the Listeners, and
// reconnects with exponential backoff, building a fresh cache (a stopped cache cannot restart).
//
// Every request to a member is bounded by RequestTimeout (rest.Config.Timeout, 10s by default),
// except the cache's watches, whose client has 11 minutes: client-go applies the timeout to a
// watch's whole stream, and the server ends each watch within 10 minutes anyway. A Member's
// client and API reader are bound to the member: what is in flight is cancelled when it
// disconnects (ErrDisconnected), and once one of its requests timed out or a probe failed,
// writes and uncached reads fail at once (ErrNotAnswering) until a probe answers, so a member
// that accepts connections but never answers costs the fleet one timeout, not one per call.
// Reads of the cache are never refused: they do not wait on the member.
//
// What went wrong is reported three ways, without ever quoting a kubeconfig: a Warning Event on
// the Secret (reason InvalidKubeconfig or Unreachable, once per change), a log line, and the
// state returned by Snapshot, which the dashboard shows.
package clusters
