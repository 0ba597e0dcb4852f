package config_test

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/image-cloner/image-cloner/pkg/config"
	"github.com/image-cloner/image-cloner/pkg/imageref"
)

const ns = "image-cloner-system"

func TestParse_defaults(t *testing.T) {
	g := NewWithT(t)
	c, err := config.Parse(map[string]string{"BACKUP_REGISTRY": " quay.io/acme "}, ns)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.BackupRegistry).To(Equal("quay.io/acme"))
	g.Expect(c.Namer.Registry()).To(Equal("quay.io"))
	g.Expect(c.NamingScheme).To(Equal(imageref.Flat))
	g.Expect(c.MaxConcurrentReconciles).To(Equal(5))
	g.Expect(c.IgnoredNamespaces).To(Equal([]string{ns, "kube-system"}))
	g.Expect(c.PinDigest).To(BeTrue())
	g.Expect(c.CopyReferrers).To(BeTrue())
	g.Expect(c.TagRefreshInterval).To(Equal(time.Hour))
	g.Expect(c.VerifyInterval).To(Equal(time.Hour))
	g.Expect(c.RegistriesToIgnore).To(BeEmpty())
	g.Expect(c.WebhookMode).To(Equal(config.WebhookWarn))
	g.Expect(c.RewriteMode).To(Equal(config.RewriteWorkload))
	g.Expect(c.Warnings).To(BeEmpty())
	g.Expect(c.Ignored("kube-system")).To(BeTrue())
	g.Expect(c.Ignored(ns)).To(BeTrue())
	g.Expect(c.Ignored("default")).To(BeFalse())
}

func TestParse_missingBackupRegistrySaysWhatAndWhere(t *testing.T) {
	for _, data := range []map[string]string{nil, {"BACKUP_REGISTRY": ""}, {"BACKUP_REGISTRY": "  \t"}} {
		_, err := config.Parse(data, ns)
		NewWithT(t).Expect(err).To(MatchError("BACKUP_REGISTRY is empty: set it in ConfigMap image-cloner-system/image-cloner-configuration"))
	}
	_, err := config.Parse(nil, "other")
	NewWithT(t).Expect(err).To(MatchError("BACKUP_REGISTRY is empty: set it in ConfigMap other/image-cloner-configuration"))
}

func TestParse_values(t *testing.T) {
	c, err := config.Parse(map[string]string{
		"BACKUP_REGISTRY":           "localhost:5000/backups",
		"MAX_CONCURRENT_RECONCILES": "100",
		"NAMESPACES_TO_IGNORE":      " team-a, team-b ,,team-a",
		"NAMING_SCHEME":             "nested",
		"PIN_DIGEST":                "false",
		"COPY_REFERRERS":            "false",
		"TAG_REFRESH_INTERVAL":      "5m",
		"VERIFY_INTERVAL":           "24h",
		"REGISTRIES_TO_IGNORE":      "GHCR.io, registry.local:5000, index.docker.io",
		"WEBHOOK_MODE":              "Enforce",
		"REWRITE_MODE":              "pod",
	}, ns)
	g := NewWithT(t)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.MaxConcurrentReconciles).To(Equal(100))
	// An explicit list replaces kube-system; the installation namespace stays.
	g.Expect(c.IgnoredNamespaces).To(Equal([]string{ns, "team-a", "team-b"}))
	g.Expect(c.Ignored("kube-system")).To(BeFalse())
	g.Expect(c.NamingScheme).To(Equal(imageref.Nested))
	g.Expect(c.PinDigest).To(BeFalse())
	g.Expect(c.CopyReferrers).To(BeFalse())
	g.Expect(c.TagRefreshInterval).To(Equal(5 * time.Minute))
	g.Expect(c.VerifyInterval).To(Equal(24 * time.Hour))
	g.Expect(c.RegistriesToIgnore).To(Equal([]string{"docker.io", "ghcr.io", "registry.local:5000"}))
	g.Expect(c.RegistryIgnored("ghcr.io")).To(BeTrue())
	g.Expect(c.RegistryIgnored("quay.io")).To(BeFalse())
	g.Expect(c.WebhookMode).To(Equal(config.WebhookEnforce))
	g.Expect(c.RewriteMode).To(Equal(config.RewritePod))
	src, _ := imageref.Parse("nginx:1.25")
	b, err := c.Namer.Backup(src)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(b.String()).To(Equal("localhost:5000/backups/docker.io/library/nginx:1.25"))
}

func TestParse_namespacesToIgnore(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  []string
	}{
		{"", []string{ns, "kube-system"}},
		{"   ", []string{ns, "kube-system"}},
		{"-", []string{ns}},
		{" - ", []string{ns}},
		{"kube-system,default", []string{"default", ns, "kube-system"}},
		{ns, []string{ns}},
	} {
		c, err := config.Parse(map[string]string{"BACKUP_REGISTRY": "quay.io/a", "NAMESPACES_TO_IGNORE": tc.value}, ns)
		NewWithT(t).Expect(err).NotTo(HaveOccurred(), "%q", tc.value)
		NewWithT(t).Expect(c.IgnoredNamespaces).To(Equal(tc.want), "%q", tc.value)
	}
}

func TestParse_invalidValuesNameKeyAndFix(t *testing.T) {
	huge := strings.Repeat("9", 70*1024)
	for _, tc := range []struct {
		key, value string
		want       []string
	}{
		{"BACKUP_REGISTRY", "Quay.io/ACME", []string{"BACKUP_REGISTRY", "e.g. quay.io/acme"}},
		{"BACKUP_REGISTRY", "quay.io/ácme", []string{"BACKUP_REGISTRY", `"quay.io/ácme"`}},
		{"MAX_CONCURRENT_RECONCILES", "0", []string{`MAX_CONCURRENT_RECONCILES is "0"`, "from 1 to 100"}},
		{"MAX_CONCURRENT_RECONCILES", "101", []string{"MAX_CONCURRENT_RECONCILES", "from 1 to 100"}},
		{"MAX_CONCURRENT_RECONCILES", "five", []string{"MAX_CONCURRENT_RECONCILES", "from 1 to 100"}},
		{"MAX_CONCURRENT_RECONCILES", "５", []string{"MAX_CONCURRENT_RECONCILES"}},
		{"MAX_CONCURRENT_RECONCILES", "99999999999999999999999", []string{"MAX_CONCURRENT_RECONCILES"}},
		{"MAX_CONCURRENT_RECONCILES", huge, []string{"MAX_CONCURRENT_RECONCILES holds 71680 bytes"}},
		{"NAMESPACES_TO_IGNORE", "team_a", []string{"NAMESPACES_TO_IGNORE lists \"team_a\"", "not a namespace name"}},
		{"NAMESPACES_TO_IGNORE", "équipe", []string{"NAMESPACES_TO_IGNORE"}},
		{"NAMESPACES_TO_IGNORE", "-,default", []string{`mixes "-"`}},
		{"NAMING_SCHEME", "deep", []string{"NAMING_SCHEME", `"flat" or "nested"`}},
		{"PIN_DIGEST", "yes", []string{"PIN_DIGEST", `"true" or "false"`}},
		{"COPY_REFERRERS", "signatures", []string{"COPY_REFERRERS", `"true" or "false"`}},
		{"TAG_REFRESH_INTERVAL", "1", []string{"TAG_REFRESH_INTERVAL", "e.g. 30m"}},
		{"TAG_REFRESH_INTERVAL", "10ms", []string{"TAG_REFRESH_INTERVAL"}},
		{"VERIFY_INTERVAL", "9999999999h", []string{"VERIFY_INTERVAL"}},
		{"VERIFY_INTERVAL", "-1h", []string{"VERIFY_INTERVAL"}},
		{"REGISTRIES_TO_IGNORE", "ghcr.io/org", []string{"REGISTRIES_TO_IGNORE lists \"ghcr.io/org\""}},
		{"REGISTRIES_TO_IGNORE", "bad host", []string{"REGISTRIES_TO_IGNORE"}},
		{"WEBHOOK_MODE", "deny", []string{"WEBHOOK_MODE", `"enforce" or "warn"`}},
		{"REWRITE_MODE", "node", []string{"REWRITE_MODE", `"workload", "pod" or "auto"`}},
		// Near misses of auto are refused, not taken for a mode they resemble.
		{"REWRITE_MODE", "automatic", []string{`REWRITE_MODE is "automatic"`, `"workload", "pod" or "auto"`}},
		{"REWRITE_MODE", "auto,pod", []string{`REWRITE_MODE is "auto,pod"`}},
	} {
		data := map[string]string{"BACKUP_REGISTRY": "quay.io/acme"}
		data[tc.key] = tc.value
		_, err := config.Parse(data, ns)
		g := NewWithT(t)
		g.Expect(err).To(HaveOccurred(), "%s=%.20q", tc.key, tc.value)
		for _, w := range tc.want {
			g.Expect(err.Error()).To(ContainSubstring(w))
		}
		g.Expect(err.Error()).To(ContainSubstring("ConfigMap image-cloner-system/image-cloner-configuration"))
		g.Expect(len(err.Error())).To(BeNumerically("<", 600), "messages quote values cut short")
	}
}

func TestParse_returnsEveryProblemAtOnce(t *testing.T) {
	_, err := config.Parse(map[string]string{
		"MAX_CONCURRENT_RECONCILES": "0",
		"PIN_DIGEST":                "maybe",
		"WEBHOOK_MODE":              "x",
	}, ns)
	g := NewWithT(t)
	g.Expect(err).To(HaveOccurred())
	lines := strings.Split(err.Error(), "\n")
	g.Expect(lines).To(HaveLen(4))
	g.Expect(lines[0]).To(HavePrefix("BACKUP_REGISTRY is empty"))
}

func TestParse_unknownKeysWarn(t *testing.T) {
	c, err := config.Parse(map[string]string{"BACKUP_REGISTRY": "quay.io/a", "MAX_CONCURENT_RECONCILES": "3"}, ns)
	g := NewWithT(t)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.MaxConcurrentReconciles).To(Equal(5))
	g.Expect(c.Warnings).To(ConsistOf(ContainSubstring(`unknown key "MAX_CONCURENT_RECONCILES"`)))
}

func TestParse_imagesToIgnore(t *testing.T) {
	cfg, err := config.Parse(map[string]string{
		config.KeyBackupRegistry: "quay.io/acme",
		config.KeyImagesToIgnore: "registry.k8s.io/*, */pause:*,docker.io/library/nginx:1.2?",
	}, "image-cloner-system")
	g := NewWithT(t)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cfg.ImagesToIgnore).To(Equal([]string{"registry.k8s.io/*", "*/pause:*", "docker.io/library/nginx:1.2?"}))
	for ref, want := range map[string]bool{
		"registry.k8s.io/kube-proxy:v1.36.3":            true,
		"registry.k8s.io/sig-storage/csi-attacher:v4.8": true, // '*' crosses '/'
		"quay.io/org/pause:3.10":                        true,
		"docker.io/library/nginx:1.25":                  true,
		"docker.io/library/nginx:1.250":                 false, // '?' is one character
		"docker.io/library/nginx:latest":                false,
		"ghcr.io/registry.k8s.io/x:1":                   false, // anchored at the start
		"quay.io/org/pause-not:3.10":                    false,
	} {
		g.Expect(cfg.ImageIgnored(ref)).To(Equal(want), ref)
	}

	none, err := config.Parse(map[string]string{config.KeyBackupRegistry: "quay.io/acme"}, "image-cloner-system")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(none.ImageIgnored("registry.k8s.io/pause:3.10")).To(BeFalse())

	for _, bad := range []string{"*", "**?", "registry.k8s.io/{a,b}", "nginx latest"} {
		_, err := config.Parse(map[string]string{config.KeyBackupRegistry: "quay.io/acme", config.KeyImagesToIgnore: bad}, "image-cloner-system")
		g.Expect(err).To(MatchError(ContainSubstring("IMAGES_TO_IGNORE lists")), bad)
	}
}

func TestConfig_Equal_seesAChangeOfEverySetting(t *testing.T) {
	base := map[string]string{config.KeyBackupRegistry: "quay.io/acme"}
	parse := func(data map[string]string) *config.Config {
		t.Helper()
		c, err := config.Parse(data, "image-cloner-system")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := parse(base)
	g := NewWithT(t)
	g.Expect(a.Equal(parse(map[string]string{config.KeyBackupRegistry: " quay.io/acme ", "UNKNOWN": "x"}))).To(BeTrue(), "trimmed values and unknown keys change nothing")
	values := map[string]string{
		config.KeyBackupRegistry: "quay.io/other", config.KeyMaxConcurrentReconciles: "7", config.KeyNamespacesToIgnore: "a,b",
		config.KeyNamingScheme: "nested", config.KeyPinDigest: "false", config.KeyTagRefreshInterval: "5m",
		config.KeyVerifyInterval: "5m", config.KeyRegistriesToIgnore: "ghcr.io", config.KeyWebhookMode: "enforce",
		config.KeyRewriteMode: "pod", config.KeyImagesToIgnore: "registry.k8s.io/*", config.KeyCopyReferrers: "false",
	}
	for key, v := range values {
		data := map[string]string{config.KeyBackupRegistry: "quay.io/acme", key: v}
		g.Expect(a.Equal(parse(data))).To(BeFalse(), "a change of %s", key)
	}
	for _, k := range config.Keys() {
		g.Expect(values).To(HaveKey(k), "every key needs a case here")
	}
}

func TestParse_rewriteModes(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  config.RewriteMode
	}{
		{"", config.RewriteWorkload},
		{"workload", config.RewriteWorkload},
		{"pod", config.RewritePod},
		{"auto", config.RewriteAuto},
		{" AUTO ", config.RewriteAuto},
	} {
		c, err := config.Parse(map[string]string{"BACKUP_REGISTRY": "quay.io/acme", "REWRITE_MODE": tc.value}, ns)
		g := NewWithT(t)
		g.Expect(err).NotTo(HaveOccurred(), "%q", tc.value)
		g.Expect(c.RewriteMode).To(Equal(tc.want), "%q", tc.value)
	}
}
