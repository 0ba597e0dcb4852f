// Package pullsecret hands the hub's pull-only credentials to every member cluster.
//
// The hub keeps, in each member, Secret image-cloner-pull-credentials in the agent's namespace
// (the one the registration names: annotation image-cloner.io/agent-namespace, which `hub
// register --namespace` writes; image-cloner-system without it), holding the payload of the
// hub's own Secret of that name. The agent copies it into every namespace.
//
// The Reconciler has one request per member, named after the cluster. A member that connects,
// and every change of the hub's pull Secret (a rotated credential reaches every member), is
// mapped onto those requests. Reconcile gets the member's Secret, computes the desired one and
// makes at most one write; a failure (the Role 'hub register' grants is missing, the agent's
// namespace does not exist yet, the member does not answer) goes back to the workqueue, which
// retries with backoff until it succeeds. Push credentials never leave the hub.
package pullsecret
