// Package env starts a whole image-cloner fleet on this machine, for the demo (hack/demo) and
// the end-to-end tests (e2e): a hub cluster and member clusters (real kube-apiservers and etcd
// from internal/testenv, the CRD installed in members, the agent's webhooks pointed at 127.0.0.1), an
// anonymous "upstream" registry seeded with sample images (one multi-arch), a backup registry
// with htpasswd auth, the hub's namespace, configuration and credentials, the registrations
// (one by `hub register`, least privilege; one by a Cluster API Secret), and bin/hub and
// bin/agent as real processes whose logs go to files.
//
// It takes a testenv.T, so a test passes its *testing.T and a program testenv.Standalone;
// everything it starts stops when that T cleans up.
package env
