package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Phase is where a ClonedImage stands in its life.
// +kubebuilder:validation:Enum=Pending;Cloning;Ready;Failed
type Phase string

const (
	// PhasePending means the image is known but no copy has started: the hub has not seen it
	// yet (the agent's webhook created it) or it waits for a free copy slot.
	PhasePending Phase = "Pending"
	// PhaseCloning means the hub is copying the image into the backup registry.
	PhaseCloning Phase = "Cloning"
	// PhaseReady means the whole image is in the backup registry under status.backup, with the
	// digest in status.digest. Only then may a workload be pointed at it.
	PhaseReady Phase = "Ready"
	// PhaseFailed means the last attempt failed; the Ready condition says why and what to do.
	PhaseFailed Phase = "Failed"
)

// ReadyCondition is the condition type that summarises a ClonedImage.
const ReadyCondition = "Ready"

// SourceCondition is the condition type that says whether the source could be checked; it is
// False, with the reason, when a Ready backup's source could not be resolved (deleted upstream,
// unreachable): the backup stays Ready.
const SourceCondition = "SourceAvailable"

// Reasons of the Ready condition. A reason is a CamelCase word a machine can switch on; the
// condition's message is the sentence a person reads.
const (
	ReasonCopied               = "Copied"
	ReasonAlreadyPresent       = "AlreadyPresent"
	ReasonPending              = "Pending"
	ReasonCloning              = "Cloning"
	ReasonInvalidReference     = "InvalidReference"
	ReasonSourceUnreachable    = "SourceUnreachable"
	ReasonSourceNotFound       = "SourceNotFound"
	ReasonBackupUnreachable    = "BackupUnreachable"
	ReasonAuthenticationFailed = "AuthenticationFailed"
	ReasonRateLimited          = "RateLimited"
	ReasonSchema1Refused       = "Schema1Refused"
	ReasonDigestMismatch       = "DigestMismatch"
	ReasonCopyFailed           = "CopyFailed"
)

// ClonedImageSpec names the public image to back up.
type ClonedImageSpec struct {
	// Source is the image reference as workloads use it, e.g. docker.io/library/nginx:1.25.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Source string `json:"source"`
}

// ClonedImageStatus is what the hub found and did.
type ClonedImageStatus struct {
	// Backup is the reference of the copy in the backup registry.
	// +optional
	Backup string `json:"backup,omitempty"`

	// Digest is the digest of the source's manifest (or index); the backup has the same digest.
	// +optional
	Digest string `json:"digest,omitempty"`

	// Phase summarises the state: Pending, Cloning, Ready or Failed.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// Size is the sum of the sizes of the image's blobs and manifests, in bytes.
	// +optional
	Size int64 `json:"size,omitempty"`

	// LastVerified is when the hub last checked, with a HEAD request, that the backup is present.
	// +optional
	LastVerified *metav1.Time `json:"lastVerified,omitempty"`

	// ObservedGeneration is the generation of the spec this status was written for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions hold the Ready condition, with a reason and a message a person can act on.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ClonedImage records one public image used in this cluster and its copy in the backup registry.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=cimg,categories=image-cloner
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Source",type=string,JSONPath=`.spec.source`
// +kubebuilder:printcolumn:name="Backup",type=string,JSONPath=`.status.backup`
// +kubebuilder:printcolumn:name="Digest",type=string,JSONPath=`.status.digest`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClonedImage struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ClonedImageSpec   `json:"spec,omitempty"`
	Status ClonedImageStatus `json:"status,omitempty"`
}

// ClonedImageList is a list of ClonedImages.
//
// +kubebuilder:object:root=true
type ClonedImageList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClonedImage `json:"items"`
}

// IsReady reports whether the backup may be used by workloads: phase Ready with a backup
// reference and a digest.
func (c *ClonedImage) IsReady() bool {
	return c.Status.Phase == PhaseReady && c.Status.Backup != "" && c.Status.Digest != ""
}
