package enroll

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// Names of the objects created in the member.
const (
	ServiceAccountName = "image-cloner-hub"
	ClusterRoleName    = "image-cloner-hub"
	RoleName           = "image-cloner-hub-pull-credentials"
	// DefaultTokenExpiration is how long a minted token is valid; the API server may cap it
	// (--service-account-max-token-expiration). Re-run register to rotate it.
	DefaultTokenExpiration = 365 * 24 * time.Hour
)

// Rules are the ClusterRole's: read the workload kinds and Pods, write ClonedImages and their status,
// and record Events. Nothing else, and no Secrets.
func Rules() []rbacv1.PolicyRule {
	read := []string{"get", "list", "watch"}
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "daemonsets", "statefulsets"}, Verbs: read},
		{APIGroups: []string{"batch"}, Resources: []string{"jobs", "cronjobs"}, Verbs: read},
		// Pods, of any owner, are what runs: the hub caches projections of them (names, owners,
		// images), never reads their logs, never execs.
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: read},
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"clonedimages"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch"}},
		{APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"clonedimages/status"}, Verbs: []string{"get", "update", "patch"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}
}

// PullSecretRules are the Role's, in the agent's namespace: only the pull-only Secret, by name.
// RBAC cannot restrict create by name, so the hub gets no create: Objects includes the Secret,
// created empty by register, which the hub then updates.
func PullSecretRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{{
		APIGroups: []string{""}, Resources: []string{"secrets"},
		ResourceNames: []string{v1alpha1.PullSecretName},
		Verbs:         []string{"get", "update", "patch"},
	}}
}

// Objects returns what register creates in a member, in order, for the hub to use namespace
// (normally v1alpha1.DefaultNamespace).
func Objects(namespace string) []client.Object {
	labels := map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue}
	meta := func(name, ns string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}
	}
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: ServiceAccountName, Namespace: namespace}}
	return []client.Object{
		&corev1.Namespace{ObjectMeta: meta(namespace, "")},
		&corev1.ServiceAccount{ObjectMeta: meta(ServiceAccountName, namespace)},
		&rbacv1.ClusterRole{ObjectMeta: meta(ClusterRoleName, ""), Rules: Rules()},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: meta(ClusterRoleName, ""),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: ClusterRoleName},
			Subjects:   subject,
		},
		&rbacv1.Role{ObjectMeta: meta(RoleName, namespace), Rules: PullSecretRules()},
		&rbacv1.RoleBinding{
			ObjectMeta: meta(RoleName, namespace),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: RoleName},
			Subjects:   subject,
		},
		&corev1.Secret{
			ObjectMeta: meta(v1alpha1.PullSecretName, namespace),
			Type:       corev1.SecretTypeDockerConfigJson,
			Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)},
		},
	}
}

// Options say which member to register, and where.
type Options struct {
	// Member is an admin-enough rest.Config of the member (it creates RBAC objects).
	Member *rest.Config
	// Name is the member's name in the hub.
	Name string
	// Namespace in the member; default v1alpha1.DefaultNamespace.
	Namespace string
	// Server overrides the API server address written into the minted kubeconfig, for when
	// the hub reaches the member by another address than the one Member uses.
	Server string
	// TokenExpiration; default DefaultTokenExpiration.
	TokenExpiration time.Duration
	// Hub is a client of the hub cluster, and HubNamespace the hub's namespace (default
	// v1alpha1.DefaultNamespace), where the registration Secret goes. Without Hub, Register
	// only returns the Secret.
	Hub          client.Client
	HubNamespace string
	// Convention of the registration Secret; default registration.Label.
	Convention registration.Convention
}

// Register sets up least-privilege access in the member and returns the registration Secret,
// created or updated in the hub when opts.Hub is set.
func Register(ctx context.Context, opts Options) (*corev1.Secret, error) {
	if opts.Member == nil || opts.Name == "" {
		return nil, errors.New("register needs the member's kubeconfig and a cluster name")
	}
	if opts.Namespace == "" {
		opts.Namespace = v1alpha1.DefaultNamespace
	}
	if opts.HubNamespace == "" {
		opts.HubNamespace = v1alpha1.DefaultNamespace
	}
	if opts.TokenExpiration == 0 {
		opts.TokenExpiration = DefaultTokenExpiration
	}
	if opts.Convention == "" {
		opts.Convention = registration.Label
	}
	member, err := client.New(opts.Member, client.Options{})
	if err != nil {
		return nil, fmt.Errorf("connecting to the member: %w", err)
	}
	if err := Apply(ctx, member, opts.Namespace); err != nil {
		return nil, err
	}
	kubeconfig, err := MintKubeconfig(ctx, opts.Member, opts.Namespace, opts.Server, opts.TokenExpiration)
	if err != nil {
		return nil, err
	}
	secret := registration.NewSecret(opts.Convention, opts.HubNamespace, opts.Name, kubeconfig)
	// Where the Role lets the hub keep the pull-only Secret: the hub reads it from here.
	secret.Annotations = map[string]string{registration.NamespaceAnnotation: opts.Namespace}
	if _, err := registration.Parse(secret); err != nil {
		return nil, fmt.Errorf("the minted kubeconfig does not parse: %w", err)
	}
	if opts.Hub == nil {
		return secret, nil
	}
	want := secret.DeepCopy()
	_, err = controllerutil.CreateOrUpdate(ctx, opts.Hub, secret, func() error {
		secret.Type, secret.Data = want.Type, want.Data
		if secret.Labels == nil {
			secret.Labels = map[string]string{}
		}
		for k, v := range want.Labels {
			secret.Labels[k] = v
		}
		if secret.Annotations == nil {
			secret.Annotations = map[string]string{}
		}
		for k, v := range want.Annotations {
			secret.Annotations[k] = v
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("writing Secret %s/%s in the hub cluster: %w", secret.Namespace, secret.Name, err)
	}
	return secret, nil
}

// Apply creates or updates Objects(namespace) in the member. It leaves an existing pull Secret's
// data alone: the hub owns it.
func Apply(ctx context.Context, c client.Client, namespace string) error {
	for _, want := range Objects(namespace) {
		obj := want.DeepCopyObject().(client.Object)
		_, err := controllerutil.CreateOrUpdate(ctx, c, obj, func() error {
			switch o := obj.(type) {
			case *rbacv1.ClusterRole:
				o.Rules = want.(*rbacv1.ClusterRole).Rules
			case *rbacv1.Role:
				o.Rules = want.(*rbacv1.Role).Rules
			case *rbacv1.ClusterRoleBinding:
				o.Subjects = want.(*rbacv1.ClusterRoleBinding).Subjects
			case *rbacv1.RoleBinding:
				o.Subjects = want.(*rbacv1.RoleBinding).Subjects
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("creating %T %s in the member: %w", want, client.ObjectKeyFromObject(want), err)
		}
	}
	return nil
}

// MintKubeconfig requests a token for the ServiceAccount and returns a kubeconfig using it, for
// the API server of cfg (or server, when set), trusting the same CA.
func MintKubeconfig(ctx context.Context, cfg *rest.Config, namespace, server string, expiration time.Duration) ([]byte, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	secs := int64(expiration / time.Second)
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, ServiceAccountName, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("minting a token for ServiceAccount %s/%s: %w", namespace, ServiceAccountName, err)
	}
	if server == "" {
		server = cfg.Host
	}
	ca := cfg.CAData
	if len(ca) == 0 && cfg.CAFile != "" {
		if ca, err = os.ReadFile(cfg.CAFile); err != nil {
			return nil, fmt.Errorf("reading the member's CA: %w", err)
		}
	}
	const name = "member"
	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca, InsecureSkipTLSVerify: cfg.Insecure, TLSServerName: cfg.ServerName}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	kc.CurrentContext = name
	return clientcmd.Write(*kc)
}
