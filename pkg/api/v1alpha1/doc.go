// Package v1alpha1 holds the image-cloner.io/v1alpha1 API: ClonedImage, the cluster-scoped
// record, kept in every member cluster, of one public image and its copy in the backup registry.
//
// The hub writes ClonedImages (it resolves, copies and verifies); the agent reads them to patch
// workloads and creates Pending ones when its admission webhook sees an image with no backup.
//
// +kubebuilder:object:generate=true
// +groupName=image-cloner.io
package v1alpha1
