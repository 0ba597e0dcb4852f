package v1alpha1

// Names shared by the hub and the agent. They are part of the contract between the two
// binaries (and of the seed project's compatibility), so they live with the API.
const (
	// DefaultNamespace is where the hub and the agent run unless told otherwise.
	DefaultNamespace = "image-cloner-system"

	// ConfigMapName is the seed's configuration ConfigMap (BACKUP_REGISTRY, ...).
	ConfigMapName = "image-cloner-configuration"

	// PullSecretName is the pull-only kubernetes.io/dockerconfigjson Secret the hub keeps in the
	// agent's namespace of each member; push credentials never go there.
	PullSecretName = "image-cloner-pull-credentials"

	// NamespacePullSecretName is the copy of PullSecretName the agent keeps in every namespace
	// whose workloads it points at backups, referenced from their imagePullSecrets.
	NamespacePullSecretName = "image-cloner-pull"

	// ValidateBackupsLabel on a namespace, with value ValidateBackupsDisabled, excludes it from
	// the admission webhooks (the seed's opt-out).
	ValidateBackupsLabel    = "validate-backups.image-cloner.io"
	ValidateBackupsDisabled = "disable"

	// IgnoreLabel on a workload or a Pod, with value IgnoreValue, opts it out: its images are
	// not copied for it, it is not patched, and the webhooks neither rewrite nor deny it.
	IgnoreLabel = "image-cloner.io/ignore"
	IgnoreValue = "true"

	// ManagedByLabel marks objects image-cloner created, so uninstall can find them.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "image-cloner"
)
