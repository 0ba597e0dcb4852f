package backups

import (
	"context"
	"fmt"
	"regexp"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/imageref"
)

// WebhookMode is what the validating webhook does with a workload whose images are not all
// backed up.
type WebhookMode string

const (
	// Warn admits the workload with an admission warning per image. It is the default: turning
	// the webhook on can then never stop a deployment, only tell people about it.
	Warn WebhookMode = "warn"
	// Enforce denies the workload until every image has a Ready backup.
	Enforce WebhookMode = "enforce"
)

// RewriteMode is where the agent points containers at backups.
type RewriteMode string

const (
	// RewriteWorkload patches the workloads' specs (and Pods at admission). It is the default:
	// the change is visible in the workload and survives the webhook being down.
	RewriteWorkload RewriteMode = "workload"
	// RewritePod leaves workload specs untouched and rewrites only Pods at admission, for
	// GitOps users whose Argo CD or Flux would revert a patched workload.
	RewritePod RewriteMode = "pod"
	// RewriteAuto patches workloads as RewriteWorkload does, and rewrites at admission only
	// what no patched template declares: every container of a Pod no patched workload owns
	// (bare, a Job's, a custom resource's), the injected containers (sidecars) of one that a
	// patched workload owns. pkg/config's RewriteAuto says it in full.
	RewriteAuto RewriteMode = "auto"
)

// Policy is the configuration the patcher, the pull secrets and the webhooks act on.
type Policy struct {
	// Namespace is the agent's own namespace; it is never patched nor validated.
	Namespace string
	// IgnoredNamespaces are left alone (NAMESPACES_TO_IGNORE).
	IgnoredNamespaces []string
	// PinDigest points containers at backup@digest rather than the backup's tag (PIN_DIGEST).
	PinDigest bool
	// WebhookMode is Warn or Enforce (WEBHOOK_MODE); empty means Warn.
	WebhookMode WebhookMode
	// RewriteMode is RewriteWorkload, RewritePod or RewriteAuto (REWRITE_MODE); empty means
	// RewriteWorkload.
	RewriteMode RewriteMode
	// Namer, when BACKUP_REGISTRY is set, recognises references under the backup registry.
	Namer *imageref.Namer
	// ImagePatterns are IMAGES_TO_IGNORE's patterns, compiled (config.MatchesAny).
	ImagePatterns []*regexp.Regexp
}

// ImageIgnored reports whether the canonical reference source matches IMAGES_TO_IGNORE.
func (s *Policy) ImageIgnored(source string) bool {
	return config.MatchesAny(s.ImagePatterns, source)
}

// OptedOut reports whether obj, a workload or a Pod, carries the opt-out label
// (image-cloner.io/ignore=true).
func OptedOut(obj client.Object) bool {
	return obj.GetLabels()[apiv1.IgnoreLabel] == apiv1.IgnoreValue
}

// PolicyFunc returns the Policy in force; the agent reads its ConfigMap through its cache,
// so a change takes effect on the next reconcile or admission request without a restart.
type PolicyFunc func(ctx context.Context) (*Policy, error)

// Static returns a PolicyFunc that always returns s.
func Static(s *Policy) PolicyFunc {
	return func(context.Context) (*Policy, error) { return s, nil }
}

// AlwaysExcluded are namespaces no webhook validates or mutates and the patcher never touches,
// whatever the configuration says: breaking them can break the cluster or the agent itself.
var AlwaysExcluded = []string{"kube-system", apiv1.DefaultNamespace}

// Ignored reports whether namespace ns is left alone: the agent's own namespace, kube-system,
// image-cloner-system and NAMESPACES_TO_IGNORE.
func (s *Policy) Ignored(ns string) bool {
	return ns == s.Namespace || slices.Contains(AlwaysExcluded, ns) || slices.Contains(s.IgnoredNamespaces, ns)
}

// Enforcing reports whether the validating webhook denies.
func (s *Policy) Enforcing() bool { return s.WebhookMode == Enforce }

// PodMode reports whether only Pods are rewritten (GitOps mode).
func (s *Policy) PodMode() bool { return s.RewriteMode == RewritePod }

// AutoMode reports whether Pods are rewritten only where no patched workload template
// declares the container (RewriteAuto).
func (s *Policy) AutoMode() bool { return s.RewriteMode == RewriteAuto }

// FromConfig returns the Policy of a parsed configuration.
func FromConfig(c *config.Config) *Policy {
	s := &Policy{
		Namespace:         c.Namespace,
		IgnoredNamespaces: c.IgnoredNamespaces,
		PinDigest:         c.PinDigest,
		WebhookMode:       Warn,
		RewriteMode:       RewriteWorkload,
		Namer:             c.Namer,
		ImagePatterns:     c.ImagePatterns(),
	}
	if c.WebhookMode == config.WebhookEnforce {
		s.WebhookMode = Enforce
	}
	switch c.RewriteMode {
	case config.RewritePod:
		s.RewriteMode = RewritePod
	case config.RewriteAuto:
		s.RewriteMode = RewriteAuto
	}
	return s
}

// Defaults are the Policy of an agent in namespace without a ConfigMap: pkg/config's
// defaults (warn, workload, digests pinned, kube-system ignored), no backup registry known.
func Defaults(namespace string) *Policy {
	return &Policy{
		Namespace:         namespace,
		IgnoredNamespaces: config.DefaultIgnoredNamespaces,
		PinDigest:         true,
		WebhookMode:       Warn,
		RewriteMode:       RewriteWorkload,
	}
}

// FromConfigMap returns a PolicyFunc that reads ConfigMap image-cloner-configuration in
// namespace through r (the manager's cache) at every call, so edits apply without a restart.
// A missing ConfigMap means Defaults; an invalid one is an error naming every problem.
func FromConfigMap(r client.Reader, namespace string) PolicyFunc {
	return func(ctx context.Context) (*Policy, error) {
		cm := &corev1.ConfigMap{}
		err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: apiv1.ConfigMapName}, cm)
		if apierrors.IsNotFound(err) {
			return Defaults(namespace), nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading ConfigMap %s/%s: %w", namespace, apiv1.ConfigMapName, err)
		}
		c, err := config.Parse(cm.Data, namespace)
		if err != nil {
			return nil, err
		}
		return FromConfig(c), nil
	}
}
