package config_test

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/image-cloner/image-cloner/pkg/config"
)

// TestParse_malformedValuesNameKeyAndExpectation gives every key the values people get wrong
// and the ones nobody writes on purpose (huge, invisible, binary). Each row asserts the error
// names the key, the ConfigMap and what is expected, quotes the value cut short and escaped,
// and that the other keys' problems are still reported with it.
func TestParse_malformedValuesNameKeyAndExpectation(t *testing.T) {
	mib := strings.Repeat("a", 1<<20)
	under := strings.Repeat("b", 60*1024) // under the 64 KiB bound: reaches each key's own check
	type row struct {
		value string
		want  []string
	}
	expect := map[string]string{
		config.KeyBackupRegistry:          "e.g. quay.io/acme",
		config.KeyMaxConcurrentReconciles: "a whole number from 1 to 100",
		config.KeyNamespacesToIgnore:      "not a namespace name",
		config.KeyNamingScheme:            `"flat" or "nested"`,
		config.KeyPinDigest:               `"true" or "false"`,
		config.KeyCopyReferrers:           `"true" or "false"`,
		config.KeyTagRefreshInterval:      "a duration from 1s to 720h",
		config.KeyVerifyInterval:          "a duration from 1s to 720h",
		config.KeyRegistriesToIgnore:      "not a registry host",
		config.KeyWebhookMode:             `"enforce" or "warn"`,
		config.KeyRewriteMode:             `"workload", "pod" or "auto"`,
	}
	common := []row{
		{"\u202eevil", []string{`"\u202eevil"`}},
		{"zero\u200bwidth", []string{`"zero\u200bwidth"`}},
		{"nul\x00byte", []string{`"nul\x00byte"`}},
		{"\xff\xfe", []string{`"\xff\xfe"`}},
		{"ｑuay", nil}, // fullwidth homoglyph
		{under, []string{`"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"...`}},
	}
	perKey := map[string][]row{
		config.KeyBackupRegistry: {
			{"https://quay.io/acme", []string{"must not be a URL"}},
			{"quay.io/ACME", []string{`"quay.io/ACME"`}},
			{"quay.io/acme/", nil}, // accepted, see below
			{"acme", []string{"does not start with a registry host"}},
			{"quay.io//acme", nil},
			{"quay.io:99999/acme", nil},
		},
		config.KeyMaxConcurrentReconciles: {
			{"-1", []string{`"-1"`}}, {"0", nil}, {"101", nil}, {"1e3", nil}, {"1.5", nil},
			{"99999999999999999999999999", nil}, {"0x10", nil},
		},
		config.KeyNamespacesToIgnore: {
			{"Team-A", []string{`lists "Team-A"`}}, {"team_a", nil}, {"a,-", []string{`mixes "-"`}},
			{"a b", nil}, {strings.Repeat("n", 64), []string{"must be no more than 63"}},
		},
		config.KeyNamingScheme:       {{"deep", nil}, {"flat,nested", nil}},
		config.KeyPinDigest:          {{"yes", nil}, {"on", nil}, {"2", nil}},
		config.KeyCopyReferrers:      {{"no", nil}, {"off", nil}},
		config.KeyTagRefreshInterval: {{"1", nil}, {"-1h", nil}, {"10ms", nil}, {"721h", nil}, {"1 hour", nil}, {"9999999999999h", nil}},
		config.KeyVerifyInterval:     {{"0", nil}, {"P1D", nil}},
		config.KeyRegistriesToIgnore: {
			{"https://ghcr.io", []string{`lists "https://ghcr.io"`, "hosts like ghcr.io"}},
			{"ghcr.io/org", nil}, {"bad host", nil}, {"ghcr.io,,quay.io/x", []string{`"quay.io/x"`}},
		},
		config.KeyWebhookMode: {{"deny", nil}, {"enforce,warn", nil}},
		config.KeyRewriteMode: {{"node", nil}, {"Workloads", nil}, {"auto mode", nil}},
	}
	for _, key := range fuzzKeys {
		for _, r := range append(perKey[key], common...) {
			if key == config.KeyBackupRegistry && (r.value == "quay.io/acme/" || r.value == "quay.io:99999/acme") {
				continue // accepted: a trailing slash is trimmed; ports are not range-checked
			}
			if key == config.KeyNamespacesToIgnore && r.value == "ｑuay" {
				r.want = []string{`"ｑuay"`}
			}
			data := map[string]string{config.KeyBackupRegistry: "quay.io/acme", "PIN_DIGEST": "maybe"}
			data[key] = r.value
			_, err := config.Parse(data, ns)
			g := NewWithT(t)
			g.Expect(err).To(HaveOccurred(), "%s=%.40q", key, r.value)
			lines := strings.Split(err.Error(), "\n")
			var line string
			for _, l := range lines {
				if strings.HasPrefix(l, key+" ") {
					line = l
				}
			}
			g.Expect(line).NotTo(BeEmpty(), "%s=%.40q: no problem names the key in %q", key, r.value, err)
			g.Expect(line).To(ContainSubstring("ConfigMap image-cloner-system/image-cloner-configuration"))
			if r.value != "a,-" {
				g.Expect(line).To(ContainSubstring(expect[key]), "%s=%.40q", key, r.value)
			}
			for _, w := range r.want {
				g.Expect(line).To(ContainSubstring(w))
			}
			g.Expect(line).NotTo(ContainSubstring("\u202e"))
			g.Expect(line).NotTo(ContainSubstring("\u200b"))
			g.Expect(line).NotTo(ContainSubstring("\x00"))
			g.Expect(len(line)).To(BeNumerically("<", maxLineBytes), "%s=%.40q: %.300q", key, r.value, line)
			if key != config.KeyPinDigest {
				g.Expect(err.Error()).To(ContainSubstring(`PIN_DIGEST is "maybe"`), "one bad key does not hide another")
			}
		}
		_, err := config.Parse(map[string]string{config.KeyBackupRegistry: "quay.io/acme", key: mib}, ns)
		NewWithT(t).Expect(err).To(MatchError(ContainSubstring(key+" holds 1048576 bytes, more than any valid value (65536 at most): fix it in ConfigMap")), key)
	}
}

// TestParse_acceptedOddities documents the odd values that are accepted, and what they mean.
func TestParse_acceptedOddities(t *testing.T) {
	for _, tc := range []struct {
		data  map[string]string
		check func(Gomega, *config.Config)
	}{
		{map[string]string{"NAMESPACES_TO_IGNORE": " a ,a,, b ,a "}, func(g Gomega, c *config.Config) {
			g.Expect(c.IgnoredNamespaces).To(Equal([]string{"a", "b", ns}), "duplicates and blanks dropped")
		}},
		{map[string]string{"NAMESPACES_TO_IGNORE": ",,,"}, func(g Gomega, c *config.Config) {
			g.Expect(c.IgnoredNamespaces).To(Equal([]string{ns}), "a list of nothing ignores only the installation namespace")
		}},
		{map[string]string{"REGISTRIES_TO_IGNORE": "GHCR.IO, ghcr.io ,registry-1.docker.io"}, func(g Gomega, c *config.Config) {
			g.Expect(c.RegistriesToIgnore).To(Equal([]string{"docker.io", "ghcr.io"}), "lower-cased, aliases merged, duplicates dropped")
		}},
		{map[string]string{"BACKUP_REGISTRY": " QUAY.io/acme/ "}, func(g Gomega, c *config.Config) {
			g.Expect(c.Namer.Registry()).To(Equal("quay.io"), "a host is case-insensitive")
		}},
		{map[string]string{"WEBHOOK_MODE": " ENFORCE ", "REWRITE_MODE": "Pod", "PIN_DIGEST": "FALSE", "MAX_CONCURRENT_RECONCILES": "+7"}, func(g Gomega, c *config.Config) {
			g.Expect(c.WebhookMode).To(Equal(config.WebhookEnforce))
			g.Expect(c.RewriteMode).To(Equal(config.RewritePod))
			g.Expect(c.PinDigest).To(BeFalse())
			g.Expect(c.MaxConcurrentReconciles).To(Equal(7))
		}},
		{map[string]string{"\u202eBACKUP_REGISTRY": "x"}, func(g Gomega, c *config.Config) {
			g.Expect(c.Warnings).To(ConsistOf(ContainSubstring(`unknown key "\u202eBACKUP_REGISTRY"`)), "a key with an invisible character is a typo to show")
		}},
	} {
		data := map[string]string{"BACKUP_REGISTRY": "quay.io/acme"}
		for k, v := range tc.data {
			data[k] = v
		}
		c, err := config.Parse(data, ns)
		g := NewWithT(t)
		g.Expect(err).NotTo(HaveOccurred())
		tc.check(g, c)
	}
}
