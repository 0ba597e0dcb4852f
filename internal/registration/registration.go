package registration

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/cluster-api/util/kubeconfig"
	capisecret "sigs.k8s.io/cluster-api/util/secret"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
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
	// NamespaceAnnotation names the agent's namespace in the member, where the hub keeps the
	// pull-only Secret; `hub register --namespace` writes it. Honoured in both conventions;
	// without it, v1alpha1.DefaultNamespace (image-cloner-system).
	NamespaceAnnotation = "image-cloner.io/agent-namespace"
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
	// Namespace is the agent's namespace in the member (NamespaceAnnotation, default
	// v1alpha1.DefaultNamespace).
	Namespace string
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
		return nil, fmt.Errorf("%s: cluster name %s is not valid: %s", ref, quote(cluster), strings.Join(errs, "; "))
	}
	namespace := v1alpha1.DefaultNamespace
	if v, ok := s.Annotations[NamespaceAnnotation]; ok {
		if errs := validation.IsDNS1123Label(v); len(errs) > 0 {
			return nil, fmt.Errorf("%s: annotation %s %s is not a namespace name: %s", ref, NamespaceAnnotation, quote(v), strings.Join(errs, "; "))
		}
		namespace = v
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
	return &Registration{Cluster: cluster, Convention: conv, Config: cfg, Namespace: namespace}, nil
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
	if !ok || kctx == nil {
		return nil, fmt.Errorf("kubeconfig's current-context %s is not among its contexts", quote(raw.CurrentContext))
	}
	cl, ok := raw.Clusters[kctx.Cluster]
	if !ok || cl == nil {
		return nil, fmt.Errorf("kubeconfig context %s names cluster %s, which it does not define", quote(raw.CurrentContext), quote(kctx.Cluster))
	}
	if cl.Server == "" {
		return nil, fmt.Errorf("kubeconfig cluster %s has no server address", quote(kctx.Cluster))
	}
	ai, ok := raw.AuthInfos[kctx.AuthInfo]
	if !ok || ai == nil {
		return nil, fmt.Errorf("kubeconfig context %s names user %s, which it does not define", quote(raw.CurrentContext), quote(kctx.AuthInfo))
	}
	if ai.Exec != nil || ai.AuthProvider != nil {
		// An exec plugin would run a command of the Secret's choosing inside the hub.
		return nil, fmt.Errorf("kubeconfig user %s uses an exec or auth-provider plugin, which the hub does not run: use a token or client certificate (see 'hub register')", quote(kctx.AuthInfo))
	}
	if err := checkNoFiles(kctx.Cluster, cl, kctx.AuthInfo, ai); err != nil {
		return nil, err
	}
	if err := checkServer(kctx.Cluster, cl); err != nil {
		return nil, err
	}
	cfg, err := clientcmd.NewDefaultClientConfig(*raw, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig cannot be used: %w", redact(err))
	}
	// What client-go will make of the server address, as clientcmd rewrote it (e.g. without
	// a fragment): checked here so a bad one is the Secret's fault, not a failed connection.
	if _, _, err := rest.DefaultServerUrlFor(cfg); err != nil {
		return nil, fmt.Errorf("kubeconfig cluster %s: server is not a URL or host:port: write it as https://host:port", quote(kctx.Cluster))
	}
	// Parse the CA and client certificate now, so a broken one is reported as the Secret's
	// fault rather than as an unreachable cluster later. The x509 and PEM errors quote nothing.
	if _, err := rest.TLSConfigFor(cfg); err != nil {
		return nil, fmt.Errorf("kubeconfig's certificates cannot be used (certificate-authority-data, client-certificate-data, client-key-data must be PEM): %w", redact(err))
	}
	return cfg, nil
}

// checkNoFiles refuses paths in a kubeconfig: they would name files of the hub's own
// filesystem (its service account token, for one), which clientcmd and client-go open.
func checkNoFiles(clusterName string, cl *clientcmdapi.Cluster, userName string, ai *clientcmdapi.AuthInfo) error {
	var files []string
	if cl.CertificateAuthority != "" {
		files = append(files, fmt.Sprintf("cluster %s has certificate-authority", quote(clusterName)))
	}
	for _, f := range []struct {
		set   bool
		field string
	}{
		{ai.ClientCertificate != "", "client-certificate"},
		{ai.ClientKey != "", "client-key"},
		{ai.TokenFile != "", "tokenFile"},
	} {
		if f.set {
			files = append(files, fmt.Sprintf("user %s has %s", quote(userName), f.field))
		}
	}
	if len(files) == 0 {
		return nil
	}
	return fmt.Errorf("kubeconfig refers to files (%s), which would be read from the hub's own filesystem: embed them instead (certificate-authority-data, client-certificate-data, client-key-data, token), e.g. kubectl config view --minify --flatten", strings.Join(files, ", "))
}

// checkServer refuses server and proxy addresses that are not URLs or that carry credentials,
// without quoting them: a URL's user info is a secret.
func checkServer(clusterName string, cl *clientcmdapi.Cluster) error {
	for _, a := range []struct{ field, v string }{{"server", cl.Server}, {"proxy-url", cl.ProxyURL}} {
		if a.v == "" {
			continue
		}
		u, err := url.Parse(a.v)
		if err != nil {
			return fmt.Errorf("kubeconfig cluster %s: %s is not a URL: write it as https://host:port", quote(clusterName), a.field)
		}
		if u.User != nil {
			return fmt.Errorf("kubeconfig cluster %s: %s holds a user name or password: remove it and use the kubeconfig's user for credentials", quote(clusterName), a.field)
		}
	}
	return nil
}

// redact keeps the start of a clientcmd or client-go error, which names fields and entries of
// the kubeconfig, cut to a readable length.
func redact(err error) error {
	msg := err.Error()
	if len(msg) > 200 {
		msg = cut(msg, 200) + "..."
	}
	return errors.New(msg)
}

// quote quotes a name from the Secret or kubeconfig for an error message, cut to a readable
// length, with control, invisible and invalid characters escaped.
func quote(v string) string {
	const max = 64
	if len(v) > max {
		return strconv.Quote(cut(v, max)) + "..."
	}
	return strconv.Quote(v)
}

// cut shortens s to at most n bytes without splitting a UTF-8 sequence.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
