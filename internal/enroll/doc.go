// Package enroll gives the hub least-privilege access to a member cluster, so that no
// cluster-admin credential ever sits on the hub.
//
// In the member it creates the namespace image-cloner-system, the ServiceAccount
// image-cloner-hub, a ClusterRole that may only read the workload kinds, write ClonedImages and
// create Events, and a Role that may only read and update the one pull-only Secret the hub
// hands to the agent. It then mints a token for the ServiceAccount (TokenRequest), writes a
// kubeconfig holding it, and stores that kubeconfig as a registration Secret in the hub cluster
// (see internal/registration). Rules and Objects are exported so that deploy manifests and tests use
// the same rules.
package enroll
