// Package e2e holds image-cloner's end-to-end specs. Each spec is a function taking an input
// struct of kubeconfig-backed clients and registry addresses (cluster-api's style), so the same
// specs run against local control planes with the real hub and agent processes (local_test.go,
// `make e2e`) and against kind clusters (`make e2e-kind`). A spec asserts the state of the world
// (objects in the clusters, manifests and requests at the registries), never which calls were
// made, and waits by polling that state, never by sleeping.
package e2e
