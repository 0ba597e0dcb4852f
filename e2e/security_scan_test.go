package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/onsi/gomega"
	"k8s.io/client-go/rest"

	"github.com/image-cloner/image-cloner/internal/testenv"
)

// TestScanner_findsPlantedLeaks proves the leak scanner can fail: a push password planted in
// each encoding a Secret, a log line or a page could carry it is found, and text without it
// (including a password that differs by one character) is clean.
func TestScanner_findsPlantedLeaks(t *testing.T) {
	// The ~ and > make the standard and URL alphabets' encodings differ.
	const user, password = "pusher", "0f3c~~~9a7e>>>5b1d2c4a6e8f0b9d"
	near := password[:12] + "X" + password[13:] // one character off, in the middle
	dockerConfig := fmt.Sprintf(`{"auths":{"registry.example.com":{"username":%q,"password":%q,"auth":%q}}}`,
		user, password, base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
	authOnly := fmt.Sprintf(`{"auths":{"registry.example.com":{"auth":%q}}}`,
		base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
	secretYAML := func(payload string) string {
		return "apiVersion: v1\nkind: Secret\ndata:\n  .dockerconfigjson: " + base64.StdEncoding.EncodeToString([]byte(payload)) + "\n"
	}
	s, err := NewScanner(Credential{Name: "push password", Value: password})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		text     string
		encoding string // empty: no leak
	}{
		{"raw in a log line", `I1202 Copying image registry=r user=pusher password=` + password + ` done`, "raw"},
		{"base64", "token: " + base64.StdEncoding.EncodeToString([]byte(password)), "base64"},
		{"base64 of user:password (basic auth)", "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password)), "base64"},
		{"base64url", "x=" + base64.RawURLEncoding.EncodeToString([]byte("??"+password)), "base64url"},
		{"base64url at another alignment", "x=" + base64.URLEncoding.EncodeToString([]byte("?"+password)), "base64url"},
		{"inside a dockerconfigjson", dockerConfig, "raw"},
		{"auth field only, inside a dockerconfigjson", authOnly, "base64"},
		{"a dockerconfigjson Secret as YAML", secretYAML(dockerConfig), "base64"},
		{"auth inside the base64 of a dockerconfigjson", secretYAML(authOnly), "base64 inside base64"},
		{"clean", `{"auths":{"registry.example.com":{"username":"puller","password":"` + near + `"}}}`, ""},
		{"clean, base64 of a near miss", secretYAML(`{"auths":{"r":{"auth":"` + base64.StdEncoding.EncodeToString([]byte(user+":"+near)) + `"}}}`), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := gomega.NewWithT(t)
			leaks := s.Scan(tc.name, []byte(tc.text))
			if tc.encoding == "" {
				g.Expect(leaks).To(gomega.BeEmpty())
				return
			}
			g.Expect(leaks).To(gomega.ConsistOf(Leak{Credential: "push password", Where: tc.name, Encoding: tc.encoding}))
			g.Expect(leaks[0].String()).NotTo(gomega.ContainSubstring(password), "a report never quotes the credential")
		})
	}
}

// TestScanner_refusesShortCredentials: a value of a few characters would be found by chance.
func TestScanner_refusesShortCredentials(t *testing.T) {
	if _, err := NewScanner(Credential{Name: "short", Value: "p"}); err == nil {
		t.Fatal("NewScanner accepted a one-character credential")
	}
}

// TestCredentials_extractsWhatToScanFor: the scanner's inputs come from the Secrets themselves;
// a password only in the auth field and a kubeconfig's token and client key are all found.
func TestCredentials_extractsWhatToScanFor(t *testing.T) {
	g := gomega.NewWithT(t)
	cfg, err := json.Marshal(map[string]any{"auths": map[string]any{
		"a.example.com": map[string]string{"username": "u", "password": "password-a-123"},
		"b.example.com": map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte("u:password-b-456"))},
		"c.example.com": map[string]string{"identitytoken": "identity-token-789"},
	}})
	g.Expect(err).NotTo(gomega.HaveOccurred())
	creds, err := DockerConfigCredentials("push", cfg)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(creds).To(gomega.ConsistOf(
		Credential{Name: "push/a.example.com/password", Value: "password-a-123"},
		Credential{Name: "push/b.example.com/password", Value: "password-b-456"},
		Credential{Name: "push/c.example.com/identitytoken", Value: "identity-token-789"},
	))
	_, err = DockerConfigCredentials("push", []byte("not json"))
	g.Expect(err).To(gomega.HaveOccurred())

	ca, err := testenv.NewCA()
	g.Expect(err).NotTo(gomega.HaveOccurred())
	kc, err := RESTConfigCredentials("member", &rest.Config{BearerToken: "a-bearer-token-value", TLSClientConfig: rest.TLSClientConfig{KeyData: ca.ServerKeyPEM}})
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(kc).To(gomega.HaveLen(2))
	g.Expect(kc[0]).To(gomega.Equal(Credential{Name: "member/token", Value: "a-bearer-token-value"}))
	g.Expect(kc[1].Name).To(gomega.Equal("member/client-key"))
	g.Expect(string(ca.ServerKeyPEM)).To(gomega.ContainSubstring(kc[1].Value), "the key is looked for by a line of its PEM")
	s, err := NewScanner(kc...)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	// A log that printed the key with escaped newlines, as JSON would.
	escaped, _ := json.Marshal(string(ca.ServerKeyPEM))
	g.Expect(s.Scan("log", escaped)).To(gomega.HaveLen(1))
}
