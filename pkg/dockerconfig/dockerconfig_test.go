package dockerconfig_test

import (
	"encoding/base64"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	. "github.com/onsi/gomega"

	"github.com/image-cloner/image-cloner/pkg/dockerconfig"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestKeychain_resolvesCredentialsByRegistry(t *testing.T) {
	config := `{"auths": {
		"https://index.docker.io/v1/": {"auth": "` + b64("hubuser:hubpass") + `"},
		"quay.io": {"username": "robot", "password": "quaypass"},
		"registry.example.com:5000": {"auth": "` + b64("portuser:pass:with:colons") + `"},
		"https://ghcr.io": {"identitytoken": "tok"}
	}}`
	k, err := dockerconfig.Keychain([]byte(config))
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		ref  string
		want authn.AuthConfig
	}{
		{"nginx:1.25", authn.AuthConfig{Username: "hubuser", Password: "hubpass"}},
		{"docker.io/library/nginx:1.25", authn.AuthConfig{Username: "hubuser", Password: "hubpass"}},
		{"index.docker.io/library/nginx", authn.AuthConfig{Username: "hubuser", Password: "hubpass"}},
		{"quay.io/acme/app:1", authn.AuthConfig{Username: "robot", Password: "quaypass"}},
		{"registry.example.com:5000/x/y", authn.AuthConfig{Username: "portuser", Password: "pass:with:colons"}},
		{"ghcr.io/org/tool:v1", authn.AuthConfig{IdentityToken: "tok"}},
		{"registry.example.com/x/y", authn.AuthConfig{}}, // another port is another registry
		{"gcr.io/distroless/static", authn.AuthConfig{}},
	} {
		t.Run(tc.ref, func(t *testing.T) { expectResolves(t, k, tc.ref, tc.want) })
	}
}

func TestKeychain_acceptsKubernetesPayloads(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
	}{
		{"dockerconfigjson", `{"auths": {"quay.io": {"auth": "` + b64("u:p") + `"}}}`},
		{"legacy dockercfg", `{"quay.io": {"auth": "` + b64("u:p") + `", "email": "x@example.com"}}`},
		{"config.json with a credential store and auths", `{"credsStore": "desktop", "auths": {"quay.io": {"username": "u", "password": "p"}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			k, err := dockerconfig.Keychain([]byte(tc.config))
			g.Expect(err).NotTo(HaveOccurred())
			a, err := k.Resolve(name.MustParseReference("quay.io/a/b").Context())
			g.Expect(err).NotTo(HaveOccurred())
			got, err := a.Authorization()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Username).To(Equal("u"))
			g.Expect(got.Password).To(Equal("p"))
		})
	}
}

func TestKeychain_emptyConfigIsAnonymous(t *testing.T) {
	g := NewWithT(t)
	for _, config := range []string{`{}`, `{"auths": {}}`, `{"credsStore": "desktop"}`} {
		k, err := dockerconfig.Keychain([]byte(config))
		g.Expect(err).NotTo(HaveOccurred(), config)
		a, err := k.Resolve(name.MustParseReference("quay.io/a/b").Context())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(a).To(Equal(authn.Anonymous), config)
	}
}

func TestKeychain_errorsDoNotEchoSecrets(t *testing.T) {
	const secret = "s3cr3t-Passw0rd"
	for _, tc := range []struct {
		name, config, want string
	}{
		{"malformed JSON", `{"auths": {"quay.io": {"password": "` + secret + `"` + "\x00" + `}}}`, "malformed JSON at byte"},
		{"truncated JSON", `{"auths": {"quay.io": {"password": "` + secret, "malformed JSON"},
		{"auth is not base64", `{"auths": {"quay.io": {"auth": "` + secret + `!"}}}`, `"auth" is not valid base64`},
		{"auth without a colon", `{"auths": {"quay.io": {"auth": "` + b64(secret) + `"}}}`, `does not decode to user:password`},
		{"password of the wrong type", `{"auths": {"quay.io": {"password": 12345}}}`, `field "password" holds a JSON number`},
		{"entry without credentials", `{"auths": {"quay.io": {"email": "` + secret + `"}}}`, "has no credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := dockerconfig.Keychain([]byte(tc.config))
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
			g.Expect(err.Error()).NotTo(ContainSubstring(secret))
			g.Expect(err.Error()).NotTo(ContainSubstring("12345"))
			g.Expect(err.Error()).NotTo(ContainSubstring(b64(secret)))
		})
	}
}

// What the kubelet's keyring adds (host globs, repository prefixes), and the Docker Hub aliases
// it would miss on its own.
func TestKeychain_matchesAsTheKubeletDoes(t *testing.T) {
	config := `{"auths": {
		"docker.io": {"auth": "` + b64("hubuser:hubpass") + `"},
		"*.example.com": {"username": "glob", "password": "g"},
		"quay.io/acme": {"username": "acme", "password": "a"},
		"quay.io": {"username": "any", "password": "q"}
	}}`
	k, err := dockerconfig.Keychain([]byte(config))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref  string
		want authn.AuthConfig
	}{
		{"nginx", authn.AuthConfig{Username: "hubuser", Password: "hubpass"}},
		{"registry.example.com/x", authn.AuthConfig{Username: "glob", Password: "g"}},
		{"example.com/x", authn.AuthConfig{}}, // a glob needs a label in its place
		{"quay.io/acme/app", authn.AuthConfig{Username: "acme", Password: "a"}},
		{"quay.io/other/app", authn.AuthConfig{Username: "any", Password: "q"}},
	} {
		t.Run(tc.ref, func(t *testing.T) { expectResolves(t, k, tc.ref, tc.want) })
	}
}

func TestParse_returnsEntriesByRegistry(t *testing.T) {
	g := NewWithT(t)
	got, err := dockerconfig.Parse([]byte(`{"auths": {"https://index.docker.io/v1/": {"auth": "` + b64("u:p") + `"}, "quay.io": {"identitytoken": "t"}}}`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(map[string]authn.AuthConfig{
		name.DefaultRegistry: {Username: "u", Password: "p"},
		"quay.io":            {IdentityToken: "t"},
	}))
	_, err = dockerconfig.Parse([]byte(`{"auths": {"quay.io": {}}}`))
	g.Expect(err).To(MatchError(ContainSubstring(`entry "quay.io" has no credentials`)))
}

// expectResolves checks that k gives ref's repository the credentials want.
func expectResolves(t *testing.T, k authn.Keychain, ref string, want authn.AuthConfig) {
	t.Helper()
	g := NewWithT(t)
	r, err := name.ParseReference(ref)
	g.Expect(err).NotTo(HaveOccurred())
	a, err := k.Resolve(r.Context())
	g.Expect(err).NotTo(HaveOccurred())
	got, err := a.Authorization()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*got).To(Equal(want))
}
