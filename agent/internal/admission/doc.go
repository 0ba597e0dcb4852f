// Package admission holds image-cloner's admission webhooks, served by the agent.
//
// Validator checks that the images a workload (Deployment, DaemonSet, StatefulSet, Job,
// CronJob) adds are backed up: a Ready ClonedImage, or already a backup reference. For each
// image that is not, it requests a copy by creating a Pending ClonedImage (idempotently, and not
// on dry runs) that the hub picks up, and then, per WEBHOOK_MODE, denies the request
// ("enforce") or admits it with an admission warning ("warn", the default: the webhook can then
// tell, never block).
//
// Mutator points images that have a Ready backup at it as the object is admitted. With
// REWRITE_MODE=workload (default) it rewrites workloads and Pods; with REWRITE_MODE=pod (for
// GitOps: Argo CD or Flux would revert a patched workload) only Pods, leaving workload specs as
// their owners wrote them. A Pod is never pointed at a backup registry that RegistryProbe sees
// as down (GET /v2/, bounded and cached): it keeps its upstream images, with a warning, a
// BackupUnavailable Event and a metric. Workloads are rewritten regardless, so that an outage
// never flips a workload's template back and forth.
//
// Both leave alone kube-system, image-cloner's namespace, NAMESPACES_TO_IGNORE and namespaces
// labelled validate-backups.image-cloner.io=disable, in code as well as through the webhook
// configurations' namespaceSelector (deploy/webhooks), and both admit whatever they cannot
// judge (configuration unreadable, cache unavailable): with failurePolicy Ignore and a 5s
// timeout, image-cloner cannot lock a cluster.
package admission
