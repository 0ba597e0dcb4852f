// Package patcher points workloads at their backups: one reconciler per workload kind
// (Deployments, DaemonSets, StatefulSets, Jobs, CronJobs) rewrites every container whose image
// has a Ready ClonedImage to its backup, keeping the originals in an annotation, and RestoreAll
// undoes every such change (`agent restore`, the uninstall path).
package patcher
