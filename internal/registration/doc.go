// Package registration defines how a member cluster is registered with the hub: a kubeconfig in
// a Secret of the hub's namespace, in one of two conventions.
//
//   - image-cloner's own: any Secret labelled image-cloner.io/cluster=true, kubeconfig under key
//     "kubeconfig"; the cluster's name is the Secret's name, or the value of the annotation
//     image-cloner.io/cluster-name when set.
//   - Cluster API's: the Secret <cluster>-kubeconfig of type cluster.x-k8s.io/secret, labelled
//     cluster.x-k8s.io/cluster-name, kubeconfig under key "value" (what Cluster API writes for
//     every cluster it manages, so a CAPI management cluster can be the hub with no extra step).
//
// The package builds such Secrets (for `hub register` and the tests) and parses them back into a
// rest.Config, with errors a person can act on for every way a Secret can be broken.
package registration
