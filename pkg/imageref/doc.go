// Package imageref parses the container image references that Kubernetes
// workloads hold and names their copies in the backup registry.
//
// A pod spec may say "nginx", "docker.io/library/nginx:latest" or
// "index.docker.io/library/nginx" and mean the same image, so everything
// image-cloner keys on (deduplication, ClonedImage names, backup locations)
// starts from the canonical [Reference] that [Parse] returns. A [Namer] maps a
// source reference to its backup reference under BACKUP_REGISTRY, in the flat
// or nested [Scheme], such that two different sources never share a backup
// repository; [ObjectName] gives the ClonedImage object name for a source.
//
// Parsing follows the grammar of the distribution project
// (https://github.com/distribution/reference/blob/main/regexp.go), which is
// what the kubelet and container runtimes accept, with Docker Hub's
// normalisation ("nginx" is "docker.io/library/nginx:latest"). The package
// uses only the standard library so that the hub, the agent and the webhooks
// agree on names without sharing anything else.
package imageref
