// Package testenv starts the real components image-cloner's integration and end-to-end tests
// run against: Kubernetes control planes (kube-apiserver and etcd through controller-runtime's
// envtest) and CNCF distribution registries, anonymous or with htpasswd basic auth, optionally
// behind TLS with a CA made for the test.
//
// Every component is a real process on 127.0.0.1 with a port chosen at run time, so tests
// can start many at once. Everything is torn down when the test ends, even when it fails, and
// the components' logs go to files whose last lines are printed when a test fails.
//
// The binaries come from hack/test-deps.sh (make test-deps), which builds them once per version
// into a cache outside the clone. IMAGE_CLONER_ASSETS names that directory; when it is unset the
// package runs the script itself, so `go test ./...` works without make.
package testenv
