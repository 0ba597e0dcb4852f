// Package dashboard serves the hub's read-only web dashboard and its JSON API.
//
// The pages (overview, clusters, images, coverage, logs) are Go templates rendered on the server from one
// View, which Collector builds from what the hub already holds: the clusters.Fleet's
// Snapshot, the ClonedImages in the connected members' caches (the same objects
// `kubectl get clonedimages` lists in each member), the hub's Prometheus collectors, the pull
// quotas upstream registries announced (Observer), a small in-memory time series (Series) and
// the last log entries (LogBuffer, fed by a logr sink that tees the hub's logger). Templates,
// CSS and the little JavaScript that refreshes a page every two seconds are embedded: there is
// no build step and nothing is fetched from elsewhere.
//
// The API under /api/v1/ returns the same View as JSON: overview, clusters, images and logs;
// /api/v1/coverage adds the coverage figure (images.Reconciler.Coverage), computed from the
// members' cached Pods at each call: the coverage page shows it per member and for the fleet,
// and the overview's coverage card sums it up.
// Nothing on a page or in the API comes from a Secret's data: a cluster is shown by its
// registration Secret's name, its API server address and the hub's own words about it.
package dashboard
