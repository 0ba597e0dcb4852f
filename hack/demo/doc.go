// Command demo runs image-cloner on this machine with nothing but Go: a hub cluster and two
// member clusters (real kube-apiservers and etcd), an "upstream" registry with sample images
// (one multi-arch) and a backup registry with auth, bin/hub and one bin/agent per member as
// real processes, one member registered with `hub register` and one by a Cluster API Secret,
// and sample Deployments and DaemonSets sharing images. It prints the dashboard (or metrics)
// URL and each cluster's kubeconfig, one line each, then a status line whenever the images
// or workloads change, until Ctrl-C stops everything.
//
//	make demo                       # builds bin/hub, bin/agent and bin/demo, then runs it
//	bin/demo -exit-when-ready       # stop once every image is Ready and every workload patched
//
// Its output, for scripts: one line `dashboard: URL` (or `metrics: URL` while the hub has no
// dashboard), one line `kubeconfig CLUSTER: PATH` per cluster (hub, member-1, member-2) and
// `registry upstream: HOST`, `registry backup: HOST/PATH`, on stdout; progress goes to stderr.
// Logs and kubeconfigs are written to ./demo. While it runs, the e2e specs can run against it
// (e2e/external_test.go, TestExternal; the demo prints the command).
package main
