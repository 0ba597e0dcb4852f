package dockerconfig

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	k8schain "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
)

// Keychain returns a keychain holding the credentials of data, a Docker config (see Parse).
//
// It resolves as the kubelet does for image pull Secrets, with go-containerregistry's
// authn/kubernetes keyring: an entry matches its host and port, a host glob ("*.gcr.io"), or
// a repository path prefix ("quay.io/acme" only for repositories under acme), the most specific
// first. Before that keyring sees them, Docker Hub's aliases (docker.io, registry-1.docker.io,
// registry.hub.docker.com, https://index.docker.io/v1/) become index.docker.io, the name image
// references resolve to. Registries without an entry get anonymous access.
func Keychain(data []byte) (authn.Keychain, error) {
	entries, err := entries(data)
	if err != nil {
		return nil, err
	}
	auths := map[string]json.RawMessage{}
	for key, raw := range entries {
		auths[keyringKey(key)] = raw
	}
	normalized, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		return nil, fmt.Errorf("encoding docker config: %w", err)
	}
	k, err := k8schain.NewFromPullSecrets(context.Background(), []corev1.Secret{{
		Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: normalized},
	}})
	if err != nil {
		// Parse accepted every entry; the keyring's messages may quote the data.
		return nil, errors.New("parsing docker config: the keyring refused an entry Parse accepted")
	}
	return k, nil
}

// keyringKey is a config key as the kubelet's keyring matches it, with Docker Hub's aliases
// as index.docker.io and the /v1/ or /v2/ API suffix dropped.
func keyringKey(key string) string {
	k := strings.TrimSpace(key)
	k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
	host, path, _ := strings.Cut(k, "/")
	if normalizeRegistryKey(host) == name.DefaultRegistry {
		host = name.DefaultRegistry
	}
	path = strings.TrimSuffix(path, "/")
	if path == "v1" || path == "v2" || path == "" {
		return host
	}
	return host + "/" + strings.TrimPrefix(strings.TrimPrefix(path, "v1/"), "v2/")
}

// Parse checks data, a Docker config.json, which is also the payload of a Kubernetes Secret of
// type kubernetes.io/dockerconfigjson (key .dockerconfigjson); the older .dockercfg layout
// (the auths map at the top level, Secret type kubernetes.io/dockercfg) is accepted too. It
// returns the credentials of each entry by registry host, Docker Hub's aliases (docker.io,
// index.docker.io, registry-1.docker.io, registry.hub.docker.com) as index.docker.io.
//
// Each entry must hold `auth` (base64 of user:password), `username` and `password`, or
// `identitytoken` / `registrytoken`. Entry keys may be a host ("quay.io", "host:5000"), a host
// glob ("*.gcr.io"), a URL ("https://index.docker.io/v1/") or a repository prefix
// ("quay.io/acme").
//
// Errors say which entry is wrong and how, but never repeat any of the data.
func Parse(data []byte) (map[string]authn.AuthConfig, error) {
	raw, err := entries(data)
	if err != nil {
		return nil, err
	}
	out := map[string]authn.AuthConfig{}
	for key, e := range raw {
		cfg, err := parseEntry(key, e)
		if err != nil {
			return nil, err
		}
		out[normalizeRegistryKey(key)] = cfg
	}
	return out, nil
}

// entries returns data's entries by their key, each checked by parseEntry.
func entries(data []byte) (map[string]json.RawMessage, error) {
	var cfg struct {
		Auths map[string]json.RawMessage `json:"auths"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("parsing docker config: %s", describeJSONError(err))
	}
	entries := cfg.Auths
	if entries == nil {
		// .dockercfg: the entries are the top level. A config.json without auths has other
		// top-level keys (credsStore, credHelpers...), which are not registry names.
		var top map[string]json.RawMessage
		if err := json.Unmarshal(data, &top); err != nil {
			return nil, fmt.Errorf("parsing docker config: %s", describeJSONError(err))
		}
		entries = map[string]json.RawMessage{}
		for key, raw := range top {
			if looksLikeRegistry(key) {
				entries[key] = raw
			}
		}
	}
	for key, raw := range entries {
		if _, err := parseEntry(key, raw); err != nil {
			return nil, err
		}
	}
	return entries, nil
}

// parseEntry reads one entry, and says what is wrong with it without repeating its data.
func parseEntry(key string, raw json.RawMessage) (authn.AuthConfig, error) {
	if normalizeRegistryKey(key) == "" {
		return authn.AuthConfig{}, fmt.Errorf("parsing docker config: entry %q does not name a registry", redactKey(key))
	}
	{
		var e struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
			RegistryToken string `json:"registrytoken"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return authn.AuthConfig{}, fmt.Errorf("parsing docker config: entry %q: %s", redactKey(key), describeJSONError(err))
		}
		cfg := authn.AuthConfig{
			Username:      e.Username,
			Password:      e.Password,
			IdentityToken: e.IdentityToken,
			RegistryToken: e.RegistryToken,
		}
		if e.Auth != "" {
			user, pass, err := decodeAuth(e.Auth)
			if err != nil {
				return authn.AuthConfig{}, fmt.Errorf("parsing docker config: entry %q: %w", redactKey(key), err)
			}
			if cfg.Username == "" && cfg.Password == "" {
				cfg.Username, cfg.Password = user, pass
			}
		}
		if cfg == (authn.AuthConfig{}) {
			return authn.AuthConfig{}, fmt.Errorf("parsing docker config: entry %q has no credentials: set auth, username and password, or identitytoken", redactKey(key))
		}
		return cfg, nil
	}
}

// normalizeRegistryKey turns a config key or registry name into a host[:port], with every Docker
// Hub alias as go-containerregistry's name.DefaultRegistry.
func normalizeRegistryKey(key string) string {
	h := strings.TrimSpace(strings.ToLower(key))
	h = strings.TrimPrefix(h, "https://")
	h = strings.TrimPrefix(h, "http://")
	h, _, _ = strings.Cut(h, "/")
	switch h {
	case "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return name.DefaultRegistry
	}
	return h
}

func looksLikeRegistry(key string) bool {
	h := normalizeRegistryKey(key)
	return strings.ContainsAny(h, ".:") || h == "localhost"
}

// redactKey keeps an entry key printable: keys are registry names, but a malformed config
// could hold anything there, so anything past the host part is cut.
func redactKey(key string) string {
	h := normalizeRegistryKey(key)
	if len(h) > 253 {
		h = h[:253]
	}
	return h
}

func decodeAuth(auth string) (string, string, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(auth))
	if err != nil {
		// Some tools write unpadded base64.
		raw, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(auth), "="))
		if err != nil {
			return "", "", errors.New(`"auth" is not valid base64`)
		}
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" {
		return "", "", errors.New(`"auth" does not decode to user:password`)
	}
	return user, pass, nil
}

// describeJSONError says where JSON is malformed without quoting it: json's own messages can
// include a piece of the input, which here may be a secret.
func describeJSONError(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("malformed JSON at byte %d", syntax.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q holds a JSON %s where a different type is expected", typ.Field, typ.Value)
		}
		return fmt.Sprintf("JSON %s where an object is expected", typ.Value)
	}
	return "malformed JSON"
}
