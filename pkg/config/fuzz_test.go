package config_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/dockerconfig"
)

// maxLineBytes bounds one problem of a Parse error: values are quoted cut short.
const maxLineBytes = 512

var fuzzKeys = []string{
	config.KeyBackupRegistry, config.KeyMaxConcurrentReconciles, config.KeyNamespacesToIgnore,
	config.KeyNamingScheme, config.KeyPinDigest, config.KeyTagRefreshInterval, config.KeyVerifyInterval,
	config.KeyRegistriesToIgnore, config.KeyWebhookMode, config.KeyRewriteMode,
}

// Run with: go test -run='^$' -fuzz='^FuzzParseConfig$' -fuzztime=60s ./pkg/config/
//
// Any ConfigMap data: Parse never panics; each problem it reports is one line that names a key
// and the ConfigMap, in bounded length; a configuration it accepts keeps the documented rules
// (installation namespace always ignored, kube-system ignored unless a list or "-" says
// otherwise, values in range).
func FuzzParseConfig(f *testing.F) {
	f.Add("image-cloner-system", uint16(1), "quay.io/acme", "5", "", "flat", "true", "1h", "1h", "", "warn", "workload", "")
	f.Add("image-cloner-system", uint16(0x3ff), "localhost:5000/backups", "100", " team-a, team-b ,,team-a", "nested", "false", "5m", "24h", "GHCR.io, registry.local:5000, index.docker.io", "Enforce", "pod", "MAX_CONCURENT_RECONCILES")
	f.Add("ns", uint16(0x3ff), "Quay.io/ACME", "0", "-,default", "deep", "yes", "1", "-1h", "ghcr.io/org", "deny", "node", "")
	f.Add("ns", uint16(0x5), "https://quay.io/acme", "", "-", "", "", "", "", "", "", "", "")
	f.Add("ns", uint16(0x7), "quay.io/ácme", "５", "kube-system", "", "", "", "", "", "", "", "")
	f.Add("ns", uint16(0x3ff), "  ", "99999999999999999999999", "\u200bteam", "FLAT", "1", "720h", "720h1ns", "bad host", "WARN", "POD", "\u202e")
	f.Fuzz(func(t *testing.T, namespace string, present uint16, backup, maxConc, nsIgnore, scheme, pin, tagRefresh, verify, registries, webhook, rewrite, extraKey string) {
		if len(validation.IsDNS1123Label(namespace)) > 0 {
			return // the installation namespace is the hub's or agent's own, always valid
		}
		values := []string{backup, maxConc, nsIgnore, scheme, pin, tagRefresh, verify, registries, webhook, rewrite}
		data := map[string]string{}
		for i, k := range fuzzKeys {
			if present&(1<<i) != 0 {
				data[k] = values[i]
			}
		}
		if extraKey != "" && present&(1<<10) != 0 {
			data[extraKey] = backup
		}
		c, err := config.Parse(data, namespace)
		where := "ConfigMap " + namespace + "/image-cloner-configuration"
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a config and an error %v", err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !slices.ContainsFunc(fuzzKeys, func(k string) bool { return strings.HasPrefix(line, k+" ") }) {
					t.Fatalf("problem %q does not start with the key", line)
				}
				if !strings.Contains(line, where) {
					t.Fatalf("problem %q does not name %s", line, where)
				}
				if len(line) > maxLineBytes {
					t.Fatalf("problem of %d bytes, more than %d: %.200q...", len(line), maxLineBytes, line)
				}
			}
			return
		}
		checkConfig(t, c, data, namespace)
	})
}

func checkConfig(t *testing.T, c *config.Config, data map[string]string, namespace string) {
	t.Helper()
	if c.Namespace != namespace || c.BackupRegistry == "" || c.Namer == nil {
		t.Fatalf("accepted config without a namespace, backup registry or namer: %+v", c)
	}
	if !c.Ignored(namespace) {
		t.Fatalf("installation namespace %q not ignored: %v", namespace, c.IgnoredNamespaces)
	}
	if !slices.IsSorted(c.IgnoredNamespaces) || len(slices.Compact(slices.Clone(c.IgnoredNamespaces))) != len(c.IgnoredNamespaces) {
		t.Fatalf("ignored namespaces not a sorted set: %q", c.IgnoredNamespaces)
	}
	for _, ns := range c.IgnoredNamespaces {
		if len(validation.IsDNS1123Label(ns)) > 0 {
			t.Fatalf("ignores %q, not a namespace name", ns)
		}
	}
	switch v := strings.TrimSpace(data[config.KeyNamespacesToIgnore]); v {
	case "":
		if !c.Ignored("kube-system") {
			t.Fatalf("blank NAMESPACES_TO_IGNORE does not ignore kube-system: %q", c.IgnoredNamespaces)
		}
	case config.IgnoreOnlyInstallation:
		if !slices.Equal(c.IgnoredNamespaces, []string{namespace}) {
			t.Fatalf(`NAMESPACES_TO_IGNORE="-" ignores %q`, c.IgnoredNamespaces)
		}
	default:
		for _, ns := range strings.Split(v, ",") {
			if ns = strings.TrimSpace(ns); ns != "" && !c.Ignored(ns) {
				t.Fatalf("NAMESPACES_TO_IGNORE=%q does not ignore %q", v, ns)
			}
		}
	}
	if c.MaxConcurrentReconciles < 1 || c.MaxConcurrentReconciles > 100 {
		t.Fatalf("MaxConcurrentReconciles %d out of range", c.MaxConcurrentReconciles)
	}
	for _, d := range []struct {
		key string
		v   float64
	}{{config.KeyTagRefreshInterval, c.TagRefreshInterval.Seconds()}, {config.KeyVerifyInterval, c.VerifyInterval.Seconds()}} {
		if d.v < 1 || d.v > 720*3600 {
			t.Fatalf("%s %vs out of range", d.key, d.v)
		}
	}
	if !slices.IsSorted(c.RegistriesToIgnore) {
		t.Fatalf("registries to ignore not sorted: %q", c.RegistriesToIgnore)
	}
	for _, r := range c.RegistriesToIgnore {
		if r != strings.ToLower(r) || strings.ContainsAny(r, "/ ") || !c.RegistryIgnored(r) {
			t.Fatalf("registry to ignore %q is not a lower-case host", r)
		}
	}
	if c.WebhookMode != config.WebhookEnforce && c.WebhookMode != config.WebhookWarn {
		t.Fatalf("webhook mode %q", c.WebhookMode)
	}
	if c.RewriteMode != config.RewriteWorkload && c.RewriteMode != config.RewritePod && c.RewriteMode != config.RewriteAuto {
		t.Fatalf("rewrite mode %q", c.RewriteMode)
	}
	if again, err := config.Parse(data, namespace); err != nil || !slices.Equal(again.IgnoredNamespaces, c.IgnoredNamespaces) || again.BackupRegistry != c.BackupRegistry {
		t.Fatalf("Parse is not deterministic: %v", err)
	}
}

// Run with: go test -run='^$' -fuzz='^FuzzDockerConfig$' -fuzztime=60s ./pkg/config/
//
// The push and pull Secrets' Docker config.json (pkg/config validates them with
// dockerconfig.Keychain): never a panic, and an error never repeats a credential
// written in the config. Credentials are fuzzed inside a JSON template so they reach the
// decoding of entries; raw bytes reach the JSON parser.
func FuzzDockerConfig(f *testing.F) {
	f.Add("quay.io", "user", "passw0rd-abc", "dXNlcjpwYXNz", "", []byte(nil))
	f.Add("https://index.docker.io/v1/", "", "", "s3cr3t-not-base64!", "", []byte(nil))
	f.Add("bad host/with/path", "", "", "", "identity-t0ken", []byte(nil))
	f.Add("", "", "", "", "", []byte(`{"auths":{"quay.io":{"auth":12345}}}`))
	f.Add("", "", "", "", "", []byte(`{"quay.io":{"auth":"dXNlcjpwYXNz"}}`))
	f.Add("", "", "", "", "", []byte(`{"auths":{"quay.io":{"password":"unterminated-s3cr3t`))
	f.Fuzz(func(t *testing.T, host, username, password, auth, identityToken string, raw []byte) {
		data := raw
		var secrets []string
		if raw == nil {
			entry := map[string]string{"username": username, "password": password, "auth": auth, "identitytoken": identityToken}
			b, err := json.Marshal(map[string]any{"auths": map[string]any{host: entry}})
			if err != nil {
				return
			}
			data = b
			secrets = []string{password, auth, identityToken}
		}
		_, err := dockerconfig.Keychain(data)
		if err == nil {
			return
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "parsing docker config: ") || len(msg) > maxLineBytes {
			t.Fatalf("error %.300q is not a bounded docker config error", msg)
		}
		for _, s := range secrets {
			if len(s) >= 6 && strings.Contains(msg, s) && !strings.Contains(strings.ToLower(host), strings.ToLower(s)) {
				t.Fatalf("error repeats a credential %q: %s", s, msg)
			}
		}
		if len(raw) >= 16 && strings.Contains(msg, string(raw)) {
			t.Fatalf("error repeats the config: %s", msg)
		}
		if errors.Unwrap(err) != nil && strings.Contains(errors.Unwrap(err).Error(), "invalid character") {
			t.Fatalf("error wraps encoding/json's message, which quotes the input: %s", msg)
		}
	})
}
