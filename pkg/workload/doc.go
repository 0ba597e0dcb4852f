// Package workload knows where images live in the workload kinds image-cloner handles
// (Deployments, DaemonSets, StatefulSets, Jobs, CronJobs, and bare Pods at admission) and how
// to read and rewrite them: every container list (init, regular, ephemeral) of the pod template.
//
// It also holds the annotation that keeps a workload's original images, so that every
// rewrite can be undone exactly.
package workload
