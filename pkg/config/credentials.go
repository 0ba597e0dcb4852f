package config

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/dockerconfig"
)

const (
	// DefaultPushSecretName is the kubernetes.io/dockerconfigjson Secret, in the hub's namespace,
	// holding the credentials the hub pushes to the backup registry with.
	DefaultPushSecretName = "image-cloner-push-credentials"
	// LegacyDockerConfigMapName and LegacyDockerConfigKey are the seed's ConfigMap holding a
	// Docker config.json with the push credentials; accepted with a warning.
	LegacyDockerConfigMapName = "docker-configuration"
	LegacyDockerConfigKey     = "config.json"
)

// Credentials are the Docker config.json payloads the hub found.
type Credentials struct {
	// Push is the config.json the hub pushes with; nil means anonymous pushes.
	Push []byte
	// PushSource says where Push came from ("Secret ns/name"), for logs.
	PushSource string
	// Pull is the pull-only config.json handed to member clusters (Secret PullSecretName);
	// nil when none is configured.
	Pull []byte
	// Warnings are things that work but should be changed.
	Warnings []string
}

// LoadCredentials reads the push credentials from Secret pushSecret in namespace, or else from
// the seed's ConfigMap docker-configuration (with a warning), and the optional pull-only Secret
// v1alpha1.PullSecretName. Both are validated as Docker config.json; errors say which object and
// key to fix and never quote their content.
func LoadCredentials(ctx context.Context, r client.Reader, namespace, pushSecret string) (*Credentials, error) {
	c := &Credentials{}
	var s corev1.Secret
	err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: pushSecret}, &s)
	switch {
	case err == nil:
		if c.Push, err = dockerConfig(&s); err != nil {
			return nil, err
		}
		c.PushSource = fmt.Sprintf("Secret %s/%s", namespace, pushSecret)
	case apierrors.IsNotFound(err):
		var cm corev1.ConfigMap
		err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: LegacyDockerConfigMapName}, &cm)
		switch {
		case err == nil:
			data, ok := cm.Data[LegacyDockerConfigKey]
			if !ok {
				return nil, fmt.Errorf("ConfigMap %s/%s has no key %q: put the Docker config.json there, or better, create Secret %s/%s of type kubernetes.io/dockerconfigjson", namespace, LegacyDockerConfigMapName, LegacyDockerConfigKey, namespace, pushSecret)
			}
			if _, err := dockerconfig.Parse([]byte(data)); err != nil {
				return nil, fmt.Errorf("ConfigMap %s/%s key %q: %w", namespace, LegacyDockerConfigMapName, LegacyDockerConfigKey, err)
			}
			c.Push = []byte(data)
			c.PushSource = fmt.Sprintf("ConfigMap %s/%s", namespace, LegacyDockerConfigMapName)
			c.Warnings = append(c.Warnings, fmt.Sprintf("push credentials come from ConfigMap %s/%s, which anyone who can read ConfigMaps can see: move them to Secret %s/%s of type kubernetes.io/dockerconfigjson (kubectl create secret docker-registry %s ...)", namespace, LegacyDockerConfigMapName, namespace, pushSecret, pushSecret))
		case apierrors.IsNotFound(err):
			c.Warnings = append(c.Warnings, fmt.Sprintf("no push credentials: Secret %s/%s does not exist, so copies are pushed anonymously", namespace, pushSecret))
		default:
			return nil, fmt.Errorf("reading ConfigMap %s/%s: %w", namespace, LegacyDockerConfigMapName, err)
		}
	default:
		return nil, fmt.Errorf("reading Secret %s/%s: %w", namespace, pushSecret, err)
	}

	var pull corev1.Secret
	err = r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: v1alpha1.PullSecretName}, &pull)
	switch {
	case err == nil:
		if c.Pull, err = dockerConfig(&pull); err != nil {
			return nil, err
		}
	case apierrors.IsNotFound(err):
	default:
		return nil, fmt.Errorf("reading Secret %s/%s: %w", namespace, v1alpha1.PullSecretName, err)
	}
	return c, nil
}

// dockerConfig returns the config.json of a kubernetes.io/dockerconfigjson Secret, validated.
func dockerConfig(s *corev1.Secret) ([]byte, error) {
	ref := fmt.Sprintf("Secret %s/%s", s.Namespace, s.Name)
	if s.Type != corev1.SecretTypeDockerConfigJson {
		return nil, fmt.Errorf("%s is of type %q: recreate it with type %s (kubectl create secret docker-registry ...)", ref, s.Type, corev1.SecretTypeDockerConfigJson)
	}
	data := s.Data[corev1.DockerConfigJsonKey]
	if len(data) == 0 {
		return nil, fmt.Errorf("%s has no key %s: put the Docker config.json there", ref, corev1.DockerConfigJsonKey)
	}
	if _, err := dockerconfig.Parse(data); err != nil {
		return nil, fmt.Errorf("%s key %s: %w", ref, corev1.DockerConfigJsonKey, err)
	}
	return data, nil
}
