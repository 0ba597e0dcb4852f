package registration

import (
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/cluster-api/util/kubeconfig"
	capisecret "sigs.k8s.io/cluster-api/util/secret"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Convention is how a registration Secret is laid out.
type Convention string

const (
	// Label is image-cloner's own convention.
	Label Convention = "image-cloner"
	// ClusterAPI is Cluster API's <cluster>-kubeconfig convention.
	ClusterAPI Convention = "cluster-api"
)

const (
	// ClusterLabel marks a Secret as a registration in the image-cloner convention.
	ClusterLabel = "image-cloner.io/cluster"
	// ClusterNameAnnotation overrides the cluster name of an image-cloner registration Secret.
	ClusterNameAnnotation = "image-cloner.io/cluster-name"
	// KubeconfigKey holds the kubeconfig in the image-cloner convention.
	KubeconfigKey = "kubeconfig"
	// CAPIClusterNameLabel and CAPISecretType are Cluster API's (cluster.x-k8s.io/v1beta2).
	CAPIClusterNameLabel = "cluster.x-k8s.io/cluster-name"
	CAPISecretType       = corev1.SecretType("cluster.x-k8s.io/secret")
)

// NewSecret builds the registration Secret of cluster name in namespace, holding kubeconfigData.
func NewSecret(conv Convention, namespace, name string, kubeconfigData []byte) *corev1.Secret {
	if conv == ClusterAPI {
		// Cluster API's own helper, so the layout is exactly what CAPI writes. A hand-made
		// registration has no Cluster object to own it.
		s := kubeconfig.GenerateSecretWithOwner(client.ObjectKey{Namespace: namespace, Name: name}, kubeconfigData, metav1.OwnerReference{})
		s.OwnerReferences = nil
		return s
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: namespace,
			Labels:    map[string]string{ClusterLabel: "true"},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{KubeconfigKey: kubeconfigData},
	}
}

// Matches reports whether a Secret is a registration in either convention, and which.
func Matches(s *corev1.Secret) (Convention, bool) {
	if s.Labels[ClusterLabel] == "true" {
		return Label, true
	}
	if s.Type == CAPISecretType && strings.HasSuffix(s.Name, "-"+string(capisecret.Kubeconfig)) {
		return ClusterAPI, true
	}
	return "", false
}

// Registration is a parsed registration Secret.
type Registration struct {
	// Cluster is the member's name as the hub shows it.
	Cluster    string
	Convention Convention
	// Config is built from the kubeconfig's current context; Host names the API server.
	Config *rest.Config
}

// ErrNotRegistration is returned by Parse for a Secret in neither convention.
var ErrNotRegistration = errors.New("not a cluster registration Secret")

// maxKubeconfigBytes bounds what Parse reads: a kubeconfig is a few KiB; a Secret holds up to 1 MiB.
const maxKubeconfigBytes = 512 * 1024

// Parse reads a registration Secret. Its errors name the Secret and say what to fix; they never
// quote the kubeconfig, which holds credentials.
func Parse(s *corev1.Secret) (*Registration, error) {
	conv, ok := Matches(s)
	if !ok {
		return nil, ErrNotRegistration
	}
	ref := fmt.Sprintf("Secret %s/%s", s.Namespace, s.Name)
	key, cluster := KubeconfigKey, s.Name
	if v := s.Annotations[ClusterNameAnnotation]; v != "" && conv == Label {
		cluster = v
	}
	if conv == ClusterAPI {
		key = capisecret.KubeconfigDataName
		cluster = strings.TrimSuffix(s.Name, "-"+string(capisecret.Kubeconfig))
		if v := s.Labels[CAPIClusterNameLabel]; v != "" {
			cluster = v
		}
	}
	if errs := validation.IsDNS1123Subdomain(cluster); len(errs) > 0 {
		return nil, fmt.Errorf("%s: cluster name %q is not valid: %s", ref, cluster, strings.Join(errs, "; "))
	}
	data, ok := s.Data[key]
	if !ok || len(data) == 0 {
		return nil, fmt.Errorf("%s has no key %q: put the member's kubeconfig there (%s convention)", ref, key, conv)
	}
	if len(data) > maxKubeconfigBytes {
		return nil, fmt.Errorf("%s: key %q holds %d bytes, more than a kubeconfig (%d at most)", ref, key, len(data), maxKubeconfigBytes)
	}
	cfg, err := restConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s key %q: %w", ref, key, err)
	}
	return &Registration{Cluster: cluster, Convention: conv, Config: cfg}, nil
}

func restConfig(data []byte) (*rest.Config, error) {
	raw, err := clientcmd.Load(data)
	if err != nil {
		// clientcmd's YAML errors quote lines of the input; say only where it broke.
		return nil, errors.New("is not a valid kubeconfig (YAML or JSON that kubectl can read)")
	}
	if raw.CurrentContext == "" {
		return nil, errors.New("kubeconfig has no current-context: set one")
	}
	kctx, ok := raw.Contexts[raw.CurrentContext]
	if !ok {
		return nil, fmt.Errorf("kubeconfig's current-context %q is not among its contexts", raw.CurrentContext)
	}
	cl, ok := raw.Clusters[kctx.Cluster]
	if !ok {
		return nil, fmt.Errorf("kubeconfig context %q names cluster %q, which it does not define", raw.CurrentContext, kctx.Cluster)
	}
	if cl.Server == "" {
		return nil, fmt.Errorf("kubeconfig cluster %q has no server address", kctx.Cluster)
	}
	if _, ok := raw.AuthInfos[kctx.AuthInfo]; !ok {
		return nil, fmt.Errorf("kubeconfig context %q names user %q, which it does not define", raw.CurrentContext, kctx.AuthInfo)
	}
	if ai := raw.AuthInfos[kctx.AuthInfo]; ai.Exec != nil || ai.AuthProvider != nil {
		// An exec plugin would run a command of the Secret's choosing inside the hub.
		return nil, fmt.Errorf("kubeconfig user %q uses an exec or auth-provider plugin, which the hub does not run: use a token or client certificate (see 'hub register')", kctx.AuthInfo)
	}
	cfg, err := clientcmd.NewDefaultClientConfig(*raw, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig cannot be used: %w", redact(err))
	}
	return cfg, nil
}

// redact keeps clientcmd's reason but drops anything after a colon that could carry data.
func redact(err error) error {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return errors.New(msg)
}
