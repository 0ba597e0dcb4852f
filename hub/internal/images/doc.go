// Package images is the hub's fleet image reconciler: one request per public image across every
// member cluster, keyed by the image's canonical reference (imageref.Reference.String()).
//
// # Watching dynamic clusters
//
// Members connect and disconnect while the hub runs, so their events cannot come from
// source.Kind: a Kind source added with Controller.Watch lives as long as the controller, cannot
// be removed when its member goes away, and would keep a dead cache's informer referenced after
// every reconnect. Instead the controller has one source of its own (fleetSource) that only
// captures the controller's workqueue; when a member connects (clusters.Listener), the reconciler
// adds an event handler to each informer of the member's cache, built with
// handler.EnqueueRequestsFromMapFunc, that maps workloads and Pods (by their images) and ClonedImages (by
// spec.source) onto image requests in that one queue, and removes it when the member
// disconnects. Adding a handler to a synced informer replays every object, so a member that
// (re)connects is caught up at once.
//
// # Reconciling an image
//
// Reconcile looks at the world, not the event: it finds the members that use the image (their
// workloads and Pods, through the index IndexImages on each member cache, outside ignored
// namespaces and not opted out, or a ClonedImage for it, e.g. one the agent's webhook created),
// and skips images
// already in the backup registry or in REGISTRIES_TO_IGNORE. When every user has a Ready
// ClonedImage verified within TAG_REFRESH_INTERVAL (mutable tags) and VERIFY_INTERVAL, nothing is
// asked of any registry. Otherwise it marks new users Cloning and calls mirror.Copy, which
// resolves the tag with one HEAD, copies only what the backup lacks (once for the fleet: the
// Mirror deduplicates and bounds copies to MAX_CONCURRENT_RECONCILES), and verifies the backup's
// digest; when the verification interval has passed the Mirror's presence cache is dropped
// first, so a pruned backup is copied again. Ready is written only after Copy succeeded. A
// failure writes Failed with a Ready=False condition whose reason comes from mirror.Classify,
// records a Warning Event on the workloads using the image, and requeues with backoff.
//
// # Pods
//
// Pods count whatever owns them: a bare Pod, one an operator makes from a custom resource, a
// sidecar a webhook injected, in every container list. The cache holds projections of them
// (clusters.ProjectPod), so the hub reads nothing of a Pod but its names, owner references, the
// opt-out label, the original-images annotation and its images. A Pod is left alone when its
// namespace is ignored, when it carries the opt-out label, or when the workload that owns it
// does (a Deployment through its ReplicaSet, a CronJob through its Job): opting a workload out
// would otherwise be undone by its Pods. A failed image records its Warning Event on the
// workloads and on at most three Pods.
//
// # Coverage
//
// Coverage counts each member's running containers (from the cached Pods) by ContainerState:
// from a backup, or upstream and why. The dashboard serves it as /api/v1/coverage and the
// metrics as image_cloner_containers{cluster,state}.
//
// ClonedImages of images no longer used are left in place: the agent may still point workloads
// at their backups, and deleting them is an explicit act.
package images
