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
// REWRITE_MODE=workload (default) it rewrites workloads and every container of every Pod; with
// REWRITE_MODE=pod (for GitOps: Argo CD or Flux would revert a patched workload) only Pods,
// leaving workload specs as their owners wrote them. With REWRITE_MODE=auto it rewrites
// workloads, and in a Pod only what no patched template declares: all of a Pod that no
// patched workload controls (a bare Pod, a Job's, a custom resource's such as a CloudNativePG
// Cluster or a Tekton TaskRun, a ReplicaSet's that no Deployment controls), and in a Pod of a
// Deployment (through its ReplicaSet, read with one uncached get), DaemonSet or StatefulSet the
// containers that template does not declare with the same image: sidecars injected by other
// webhooks. The template's own containers are left to the patcher, so the Pod runs what its
// workload says. An owner that cannot be read means the whole Pod is rewritten, as in
// workload mode. The mutating webhooks are declared with reinvocationPolicy IfNeeded and
// Handle is idempotent: when a later webhook injects a container, the API server calls it once
// more and only the injected container changes. A Pod is never pointed at a backup registry that RegistryProbe sees
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
