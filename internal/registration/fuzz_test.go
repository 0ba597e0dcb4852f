package registration_test

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/image-cloner/image-cloner/internal/registration"
)

// maxErrorBytes bounds an error message: it is shown in a condition and on the dashboard.
const maxErrorBytes = 1024

// Run with: go test -run='^$' -fuzz='^FuzzParseRegistration$' -fuzztime=60s ./internal/registration/
//
// Any Secret: Parse never panics, its errors are bounded and name the Secret, and a nil error
// means a rest.Config with a Host client-go can build a TLS configuration and URL for.
func FuzzParseRegistration(f *testing.F) {
	good := kubeconfigBytes(f, kubeconfigFields{Server: "https://10.0.0.1:6443", Token: "t0ken-abcdefgh"})
	f.Add("", "member-1", "true", "", "", "kubeconfig", good)
	f.Add(string(registration.CAPISecretType), "member-1-kubeconfig", "", "", "member-1", "value", good)
	f.Add(string(registration.CAPISecretType), "member-1-kubeconfig", "", "", "", "value", good)
	f.Add("Opaque", "m", "true", "renamed", "", "kubeconfig", []byte("{}"))
	f.Add("Opaque", "m", "true", "", "", "kubeconfig", []byte("apiVersion: v1\nclusters: [ {{{"))
	f.Add("Opaque", "m", "yes", "", "", "kubeconfig", good)
	f.Add("Opaque", "m", "true", "Bad_Name", "", "config", good)
	f.Fuzz(func(t *testing.T, typ, name, label, nameAnnotation, capiName, key string, data []byte) {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace:   "hub",
				Name:        name,
				Labels:      map[string]string{registration.ClusterLabel: label, registration.CAPIClusterNameLabel: capiName},
				Annotations: map[string]string{registration.ClusterNameAnnotation: nameAnnotation},
			},
			Type: corev1.SecretType(typ),
			Data: map[string][]byte{key: data},
		}
		conv, matches := registration.Matches(s)
		reg, err := registration.Parse(s)
		if !matches {
			if !errors.Is(err, registration.ErrNotRegistration) {
				t.Fatalf("Parse of a Secret that does not match = %v, %v", reg, err)
			}
			return
		}
		if err != nil {
			checkError(t, err, "Secret hub/")
			return
		}
		if reg.Convention != conv {
			t.Fatalf("Parse says convention %q, Matches %q", reg.Convention, conv)
		}
		checkUsable(t, reg.Config)
	})
}

// Run with: go test -run='^$' -fuzz='^FuzzParseKubeconfigCredentials$' -fuzztime=60s ./internal/registration/
//
// A kubeconfig built from fuzzed fields and credentials: errors never repeat a credential
// (token, password, client key, a password in a URL), and a nil error means a usable config.
// The credential check is differential: a credential counts as leaked if it is in the error
// and not in the error Parse gives for the same kubeconfig with other credentials.
func FuzzParseKubeconfigCredentials(f *testing.F) {
	f.Add("https://10.0.0.1:6443", "", "ctx", "c", "u", "t0ken-abcdefgh", "", "", []byte(nil), []byte(nil), "", "")
	f.Add("https://10.0.0.1:6443", "", "ctx", "c", "u", "", "admin", "passw0rd-xyz", []byte(nil), []byte(nil), "", "")
	f.Add("https://10.0.0.1:6443", "", "ctx", "c", "u", "", "", "", []byte("not pem"), []byte("-----BEGIN EC PRIVATE KEY-----\nsecretkeymaterial\n-----END EC PRIVATE KEY-----\n"), "", "")
	f.Add("https://admin:s3cret-in-url@10.0.0.1:6443", "", "ctx", "c", "u", "t0ken-abcdefgh", "", "", []byte(nil), []byte(nil), "", "")
	f.Add("https://10.0.0.1:6443", "http://user:proxy-s3cret@proxy:3128", "ctx", "c", "u", "t0ken-abcdefgh", "", "", []byte(nil), []byte(nil), "", "")
	f.Add("https://10.0.0.1:6443", "", "ctx", "c", "u", "t0ken-abcdefgh", "", "", []byte(nil), []byte(nil), "/etc/ssl/ca.crt", "/var/run/secrets/kubernetes.io/serviceaccount/token")
	f.Add("10.0.0.1:6443/path", "%zz", "\u202ectx", "c\u200b", "", "t0ken-abcdefgh", "", "", []byte(nil), []byte(nil), "", "")
	f.Fuzz(func(t *testing.T, server, proxy, context, cluster, user, token, username, password string, certData, keyData []byte, caFile, tokenFile string) {
		fields := kubeconfigFields{
			Server: server, ProxyURL: proxy, Context: context, Cluster: cluster, User: user,
			Token: token, Username: username, Password: password,
			CertData: certData, KeyData: keyData, CAFile: caFile, TokenFile: tokenFile,
		}
		reg, err := registration.Parse(registration.NewSecret(registration.Label, "hub", "member", kubeconfigBytes(t, fields)))
		if err == nil {
			checkUsable(t, reg.Config)
			return
		}
		checkError(t, err, `Secret hub/member key "kubeconfig"`)
		other := fields.otherCredentials()
		_, otherErr := registration.Parse(registration.NewSecret(registration.Label, "hub", "member", kubeconfigBytes(t, other)))
		for _, secret := range fields.secrets() {
			if len(secret) < 6 {
				continue // too short to tell a leak from a coincidence
			}
			if strings.Contains(err.Error(), secret) && (otherErr == nil || !strings.Contains(otherErr.Error(), secret)) {
				t.Fatalf("error repeats a credential %q: %v", secret, err)
			}
		}
	})
}

func checkError(t *testing.T, err error, prefix string) {
	t.Helper()
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) {
		t.Fatalf("error %q does not start with %q", msg, prefix)
	}
	if len(msg) > maxErrorBytes {
		t.Fatalf("error of %d bytes, more than %d: %.300q...", len(msg), maxErrorBytes, msg)
	}
}

func checkUsable(t *testing.T, cfg *rest.Config) {
	t.Helper()
	if cfg == nil || cfg.Host == "" {
		t.Fatalf("Parse accepted a kubeconfig without a server: %+v", cfg)
	}
	if cfg.ExecProvider != nil || cfg.AuthProvider != nil {
		t.Fatalf("Parse accepted an exec or auth-provider plugin")
	}
	if cfg.CAFile != "" || cfg.CertFile != "" || cfg.KeyFile != "" || cfg.BearerTokenFile != "" {
		t.Fatalf("Parse accepted a file reference: %q %q %q %q", cfg.CAFile, cfg.CertFile, cfg.KeyFile, cfg.BearerTokenFile)
	}
	if _, _, err := rest.DefaultServerUrlFor(cfg); err != nil {
		t.Fatalf("Parse accepted server %q, which client-go cannot use: %v", cfg.Host, err)
	}
	if _, err := rest.TLSConfigFor(cfg); err != nil {
		t.Fatalf("Parse accepted a config whose TLS settings client-go cannot use: %v", err)
	}
}

// kubeconfigFields are the parts of a one-context kubeconfig.
type kubeconfigFields struct {
	Server, ProxyURL, Context, Cluster, User string
	Token, Username, Password                string
	CertData, KeyData                        []byte
	CAFile, TokenFile                        string
}

// secrets lists the credentials: what must never appear in an error.
func (k kubeconfigFields) secrets() []string {
	s := []string{k.Token, k.Password, string(k.KeyData)}
	for _, u := range []string{k.Server, k.ProxyURL} {
		if at := strings.LastIndex(u, "@"); at > 0 {
			if i := strings.Index(u, "://"); i >= 0 && i+3 < at {
				s = append(s, u[i+3:at])
			}
		}
	}
	return s
}

// otherCredentials returns the same kubeconfig with every credential replaced by another of
// the same shape.
func (k kubeconfigFields) otherCredentials() kubeconfigFields {
	o := k
	swap := func(s string) string {
		if s == "" {
			return ""
		}
		return strings.Repeat("Q", len(s))
	}
	o.Token, o.Password = swap(k.Token), swap(k.Password)
	if len(k.KeyData) > 0 {
		o.KeyData = []byte(swap(string(k.KeyData)))
	}
	for _, p := range []*string{&o.Server, &o.ProxyURL} {
		if at := strings.LastIndex(*p, "@"); at > 0 {
			if i := strings.Index(*p, "://"); i >= 0 && i+3 < at {
				*p = (*p)[:i+3] + swap((*p)[i+3:at]) + (*p)[at:]
			}
		}
	}
	return o
}

func kubeconfigBytes(t testing.TB, k kubeconfigFields) []byte {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cl := clientcmdapi.NewCluster()
	cl.Server, cl.ProxyURL, cl.CertificateAuthority = k.Server, k.ProxyURL, k.CAFile
	ai := clientcmdapi.NewAuthInfo()
	ai.Token, ai.Username, ai.Password, ai.TokenFile = k.Token, k.Username, k.Password, k.TokenFile
	ai.ClientCertificateData, ai.ClientKeyData = k.CertData, k.KeyData
	kctx := clientcmdapi.NewContext()
	kctx.Cluster, kctx.AuthInfo = k.Cluster, k.User
	cfg.Clusters[k.Cluster] = cl
	cfg.AuthInfos[k.User] = ai
	cfg.Contexts[k.Context] = kctx
	cfg.CurrentContext = k.Context
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		// YAML cannot hold some strings (control characters): no Secret can either.
		t.Skipf("fields cannot be written as a kubeconfig: %v", err)
	}
	return data
}
