package mirror

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// KeychainFromDockerConfig returns a keychain holding the credentials of a Docker config.json,
// which is also the payload of a Kubernetes Secret of type kubernetes.io/dockerconfigjson
// (key .dockerconfigjson). The older .dockercfg layout (the auths map at the top level, Secret
// type kubernetes.io/dockercfg) is accepted too.
//
// Each entry may hold `auth` (base64 of user:password), `username` and `password`, or
// `identitytoken` / `registrytoken`. Entry keys may be a host ("quay.io", "host:5000") or a
// URL ("https://index.docker.io/v1/"); Docker Hub's aliases (docker.io, index.docker.io,
// registry-1.docker.io, registry.hub.docker.com) all name Docker Hub. Registries without an
// entry get anonymous access.
//
// Errors say which entry is wrong and how, but never repeat any of the data.
func KeychainFromDockerConfig(data []byte) (authn.Keychain, error) {
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
	k := dockerConfigKeychain{}
	for key, raw := range entries {
		host := normalizeRegistryKey(key)
		if host == "" {
			return nil, fmt.Errorf("parsing docker config: entry %q does not name a registry", redactKey(key))
		}
		var e struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
			RegistryToken string `json:"registrytoken"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("parsing docker config: entry %q: %s", redactKey(key), describeJSONError(err))
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
				return nil, fmt.Errorf("parsing docker config: entry %q: %w", redactKey(key), err)
			}
			if cfg.Username == "" && cfg.Password == "" {
				cfg.Username, cfg.Password = user, pass
			}
		}
		if cfg == (authn.AuthConfig{}) {
			return nil, fmt.Errorf("parsing docker config: entry %q has no credentials: set auth, username and password, or identitytoken", redactKey(key))
		}
		k[host] = cfg
	}
	return k, nil
}

type dockerConfigKeychain map[string]authn.AuthConfig

// Resolve implements authn.Keychain.
func (k dockerConfigKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	if cfg, ok := k[normalizeRegistryKey(target.RegistryStr())]; ok {
		return authn.FromConfig(cfg), nil
	}
	return authn.Anonymous, nil
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
