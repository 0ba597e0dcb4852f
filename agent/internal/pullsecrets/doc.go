// Package pullsecrets keeps the pull-only registry credentials in every namespace: a copy of
// Secret <agent namespace>/image-cloner-pull-credentials (which the hub maintains) named
// image-cloner-pull, of type kubernetes.io/dockerconfigjson and labelled managed-by
// image-cloner, in each namespace that is not ignored. New namespaces get it, a change of the
// source is copied everywhere, and deleting the source deletes every copy.
//
// It only ever copies that one Secret, and only its .dockerconfigjson key, so nothing else (in
// particular no push credential) can leave the agent's namespace through it. The cache it
// needs (CacheByObject) holds only the source Secret and the Secrets labelled managed-by
// image-cloner, never every Secret of the cluster.
package pullsecrets
