// Package backups answers the one question the agent's patcher and webhooks share: for an
// image a workload uses, is there a backup it may be pointed at, and which reference is it?
//
// An image is usable as-is when it is already a backup (under BACKUP_REGISTRY, or equal to
// some ClonedImage's status.backup, pinned or not). Otherwise the ClonedImage named
// imageref.ObjectName(imageref.Parse(image)) decides: only a Ready one yields a target, so no
// container is ever pointed at a backup that is not complete.
//
// The package also holds the field indexes that make these answers cheap from a
// controller-runtime cache (ClonedImages by backup reference, workloads by source image), and
// Policy, the part of the agent's configuration the answers depend on.
package backups
