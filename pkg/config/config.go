package config

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/imageref"
)

// Keys of the ConfigMap. The first three are the seed's.
const (
	KeyBackupRegistry          = "BACKUP_REGISTRY"
	KeyMaxConcurrentReconciles = "MAX_CONCURRENT_RECONCILES"
	KeyNamespacesToIgnore      = "NAMESPACES_TO_IGNORE"
	KeyNamingScheme            = "NAMING_SCHEME"
	KeyPinDigest               = "PIN_DIGEST"
	KeyTagRefreshInterval      = "TAG_REFRESH_INTERVAL"
	KeyVerifyInterval          = "VERIFY_INTERVAL"
	KeyRegistriesToIgnore      = "REGISTRIES_TO_IGNORE"
	KeyWebhookMode             = "WEBHOOK_MODE"
	KeyRewriteMode             = "REWRITE_MODE"
	KeyImagesToIgnore          = "IMAGES_TO_IGNORE"
	KeyCopyReferrers           = "COPY_REFERRERS"
)

// Defaults of the optional keys.
const (
	DefaultMaxConcurrentReconciles = 5
	DefaultTagRefreshInterval      = time.Hour
	DefaultVerifyInterval          = time.Hour
	DefaultWebhookMode             = WebhookWarn
	DefaultRewriteMode             = RewriteWorkload

	// IgnoreOnlyInstallation is the NAMESPACES_TO_IGNORE value that ignores nothing but the
	// installation namespace (see the package documentation).
	IgnoreOnlyInstallation = "-"

	maxConcurrentReconciles = 100
	minInterval             = time.Second
	maxInterval             = 30 * 24 * time.Hour
	// maxValueBytes bounds what a value may hold; the longest legitimate value is a list of
	// namespaces, far below this.
	maxValueBytes = 64 * 1024
)

// DefaultIgnoredNamespaces are ignored when NAMESPACES_TO_IGNORE is missing or blank, besides the
// installation namespace.
var DefaultIgnoredNamespaces = []string{"kube-system"}

// WebhookMode is what the agent's validating webhook does with a workload whose images are not
// backed up yet.
type WebhookMode string

const (
	// WebhookEnforce denies the workload (the seed's behaviour).
	WebhookEnforce WebhookMode = "enforce"
	// WebhookWarn admits it with a warning.
	WebhookWarn WebhookMode = "warn"
)

// RewriteMode is where the agent points images at their backups (REWRITE_MODE).
type RewriteMode string

const (
	// RewriteWorkload (the default) patches the pod templates of Deployments, DaemonSets,
	// StatefulSets and CronJobs, and also rewrites every Pod at admission, whatever owns it:
	// a Pod whose template is patched later is pointed at the backup at once.
	RewriteWorkload RewriteMode = "workload"
	// RewritePod rewrites Pods at admission and leaves workloads as their owners wrote them
	// (for GitOps: Argo CD or Flux would revert a patched workload).
	RewritePod RewriteMode = "pod"
	// RewriteAuto patches workloads as RewriteWorkload does and rewrites at admission only
	// what no patched template declares: every container of a Pod that no patched workload
	// owns (a bare Pod, a Job's, a custom resource's such as a CloudNativePG Cluster or a
	// Tekton TaskRun, a ReplicaSet's that no Deployment owns), and, in a Pod of a Deployment
	// (through its ReplicaSet), DaemonSet or StatefulSet, the containers its template does not
	// declare (sidecars injected by other webhooks). The template's own containers are left to
	// the workload patch, so each Pod runs what its workload says.
	RewriteAuto RewriteMode = "auto"
)

// Config is the parsed ConfigMap.
type Config struct {
	// BackupRegistry is where copies go, host[/path], as given.
	BackupRegistry string
	// NamingScheme lays out backup repositories (flat or nested).
	NamingScheme imageref.Scheme
	// Namer names backups under BackupRegistry with NamingScheme.
	Namer *imageref.Namer
	// MaxConcurrentReconciles bounds concurrent reconciles and so simultaneous copies.
	MaxConcurrentReconciles int
	// IgnoredNamespaces is the sorted set of namespaces never processed, the installation
	// namespace included.
	IgnoredNamespaces []string
	// PinDigest points workloads at backup@digest rather than the backup's tag.
	PinDigest bool
	// CopyReferrers copies each image's signatures, attestations, SBOMs and OCI referrers
	// with it (pkg/mirror's WithReferrers); a backup is Ready only with them.
	CopyReferrers bool
	// TagRefreshInterval is how often a mutable tag is re-resolved (one HEAD) to notice it moved.
	TagRefreshInterval time.Duration
	// VerifyInterval is how often a backup is checked to still be there (one HEAD).
	VerifyInterval time.Duration
	// RegistriesToIgnore is the sorted set of canonical registry hosts whose images are never
	// copied.
	RegistriesToIgnore []string
	// ImagesToIgnore are the image patterns never copied nor rewritten (IMAGES_TO_IGNORE), as
	// given; ImageIgnored matches them.
	ImagesToIgnore []string
	// WebhookMode and RewriteMode configure the agent.
	WebhookMode WebhookMode
	RewriteMode RewriteMode
	// Namespace is the installation namespace the ConfigMap was read from.
	Namespace string
	// Warnings are things that work but deserve a look, e.g. unknown keys (a typo leaves a
	// setting at its default).
	Warnings []string

	imagePatterns []*regexp.Regexp
	// values are the trimmed values of the known keys that were set, what Equal compares.
	values map[string]string
}

var knownKeys = []string{
	KeyBackupRegistry, KeyMaxConcurrentReconciles, KeyNamespacesToIgnore, KeyNamingScheme,
	KeyPinDigest, KeyTagRefreshInterval, KeyVerifyInterval, KeyRegistriesToIgnore,
	KeyWebhookMode, KeyRewriteMode, KeyImagesToIgnore, KeyCopyReferrers,
}

// Keys returns every key the ConfigMap may hold.
func Keys() []string { return slices.Clone(knownKeys) }

// Parse reads the data of ConfigMap image-cloner-configuration in namespace, the installation
// namespace. It returns every problem at once, joined; each names the key, the ConfigMap and
// what to set. Values are trimmed of surrounding space.
func Parse(data map[string]string, namespace string) (*Config, error) {
	p := parser{data: data, where: fmt.Sprintf("ConfigMap %s/%s", namespace, v1alpha1.ConfigMapName)}
	c := &Config{Namespace: namespace}

	c.NamingScheme = imageref.Flat
	if v, ok := p.get(KeyNamingScheme); ok && v != "" {
		s, err := imageref.ParseScheme(v)
		if err != nil {
			p.fail(KeyNamingScheme, v, `"flat" or "nested"`)
		} else {
			c.NamingScheme = s
		}
	}

	switch v, _ := p.get(KeyBackupRegistry); {
	case v == "":
		p.errs = append(p.errs, fmt.Errorf("%s is empty: set it in %s", KeyBackupRegistry, p.where))
	default:
		n, err := imageref.NewNamer(v, c.NamingScheme)
		if err != nil {
			// imageref's errors start with the key and the value, quoted cut short.
			p.errs = append(p.errs, fmt.Errorf("%v: set it in %s to a registry host and optional path, e.g. quay.io/acme", err, p.where))
		} else {
			c.BackupRegistry, c.Namer = v, n
		}
	}

	c.MaxConcurrentReconciles = DefaultMaxConcurrentReconciles
	if v, ok := p.get(KeyMaxConcurrentReconciles); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxConcurrentReconciles {
			p.fail(KeyMaxConcurrentReconciles, v, fmt.Sprintf("a whole number from 1 to %d", maxConcurrentReconciles))
		} else {
			c.MaxConcurrentReconciles = n
		}
	}

	c.IgnoredNamespaces = p.namespaces(namespace)

	c.PinDigest = p.boolean(KeyPinDigest, true)
	c.CopyReferrers = p.boolean(KeyCopyReferrers, true)

	c.TagRefreshInterval = p.duration(KeyTagRefreshInterval, DefaultTagRefreshInterval)
	c.VerifyInterval = p.duration(KeyVerifyInterval, DefaultVerifyInterval)
	c.RegistriesToIgnore = p.registries()
	c.ImagesToIgnore, c.imagePatterns = p.imagePatterns()

	c.WebhookMode = DefaultWebhookMode
	if v, ok := p.get(KeyWebhookMode); ok && v != "" {
		switch m := WebhookMode(strings.ToLower(v)); m {
		case WebhookEnforce, WebhookWarn:
			c.WebhookMode = m
		default:
			p.fail(KeyWebhookMode, v, `"enforce" or "warn"`)
		}
	}
	c.RewriteMode = DefaultRewriteMode
	if v, ok := p.get(KeyRewriteMode); ok && v != "" {
		switch m := RewriteMode(strings.ToLower(v)); m {
		case RewriteWorkload, RewritePod, RewriteAuto:
			c.RewriteMode = m
		default:
			p.fail(KeyRewriteMode, v, `"workload", "pod" or "auto"`)
		}
	}

	c.values = map[string]string{}
	for _, k := range knownKeys {
		if v, ok := p.get(k); ok && v != "" {
			c.values[k] = v
		}
	}
	for _, k := range sortedKeys(data) {
		if !slices.Contains(knownKeys, k) {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s has unknown key %s, which is ignored: known keys are %s", p.where, quote(k), strings.Join(knownKeys, ", ")))
		}
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return c, nil
}

// Equal reports whether c and o were parsed from the same settings: the same installation
// namespace and the same value for every known key. A change of any setting, including one
// added to Config later, makes them differ.
func (c *Config) Equal(o *Config) bool {
	return c.Namespace == o.Namespace && maps.Equal(c.values, o.values)
}

// Ignored reports whether workloads in namespace are left alone.
func (c *Config) Ignored(namespace string) bool {
	_, found := slices.BinarySearch(c.IgnoredNamespaces, namespace)
	return found
}

// RegistryIgnored reports whether images of registry (a canonical host[:port], as in
// imageref.Reference.Registry) are never copied.
func (c *Config) RegistryIgnored(registry string) bool {
	_, found := slices.BinarySearch(c.RegistriesToIgnore, strings.ToLower(registry))
	return found
}

// ImageIgnored reports whether the image with canonical reference ref (imageref's String, e.g.
// "registry.k8s.io/pause:3.10") matches a pattern of IMAGES_TO_IGNORE.
func (c *Config) ImageIgnored(ref string) bool {
	return MatchesAny(c.imagePatterns, ref)
}

// MatchesAny reports whether ref matches one of patterns, as compiled for IMAGES_TO_IGNORE.
func MatchesAny(patterns []*regexp.Regexp, ref string) bool {
	for _, p := range patterns {
		if p.MatchString(ref) {
			return true
		}
	}
	return false
}

// ImagePatterns compiles IMAGES_TO_IGNORE's patterns (as Config.ImagesToIgnore holds them).
func (c *Config) ImagePatterns() []*regexp.Regexp { return c.imagePatterns }

type parser struct {
	data  map[string]string
	where string
	errs  []error
}

// get returns the trimmed value of key and whether the key is there at all.
func (p *parser) get(key string) (string, bool) {
	v, ok := p.data[key]
	if !ok {
		return "", false
	}
	if len(v) > maxValueBytes {
		p.errs = append(p.errs, fmt.Errorf("%s holds %d bytes, more than any valid value (%d at most): fix it in %s", key, len(v), maxValueBytes, p.where))
		return "", true
	}
	return strings.TrimSpace(v), true
}

func (p *parser) fail(key, value, want string) {
	p.errs = append(p.errs, fmt.Errorf("%s is %s: set it in %s to %s", key, quote(value), p.where, want))
}

func (p *parser) boolean(key string, def bool) bool {
	v, ok := p.get(key)
	if !ok || v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(key, v, `"true" or "false"`)
		return def
	}
	return b
}

func (p *parser) duration(key string, def time.Duration) time.Duration {
	v, ok := p.get(key)
	if !ok || v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < minInterval || d > maxInterval {
		p.fail(key, v, fmt.Sprintf("a duration from %s to %s, e.g. 30m or 1h", minInterval, "720h"))
		return def
	}
	return d
}

func (p *parser) namespaces(installation string) []string {
	set := []string{installation}
	v, _ := p.get(KeyNamespacesToIgnore)
	switch v {
	case "":
		set = append(set, DefaultIgnoredNamespaces...)
	case IgnoreOnlyInstallation:
	default:
		for _, ns := range splitList(v) {
			if ns == IgnoreOnlyInstallation {
				p.errs = append(p.errs, fmt.Errorf("%s mixes %q with namespaces: set it in %s to either %q alone or a comma separated list of namespaces", KeyNamespacesToIgnore, IgnoreOnlyInstallation, p.where, IgnoreOnlyInstallation))
				continue
			}
			if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
				p.errs = append(p.errs, fmt.Errorf("%s lists %s, which is not a namespace name (%s): fix it in %s", KeyNamespacesToIgnore, quote(ns), errs[0], p.where))
				continue
			}
			set = append(set, ns)
		}
	}
	slices.Sort(set)
	return slices.Compact(set)
}

// dockerHubAliases all name Docker Hub, as imageref canonicalises them.
var dockerHubAliases = []string{"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}

func (p *parser) registries() []string {
	v, _ := p.get(KeyRegistriesToIgnore)
	var set []string
	for _, r := range splitList(v) {
		host := strings.ToLower(r)
		if slices.Contains(dockerHubAliases, host) {
			host = imageref.DockerHub
		}
		// A registry host is what imageref finds before the first '/' of host/x.
		ref, err := imageref.Parse(host + "/x")
		if err != nil || ref.Registry != host || strings.Contains(host, "/") {
			p.errs = append(p.errs, fmt.Errorf("%s lists %s, which is not a registry host: fix it in %s to hosts like ghcr.io or registry.local:5000, comma separated", KeyRegistriesToIgnore, quote(r), p.where))
			continue
		}
		set = append(set, host)
	}
	slices.Sort(set)
	return slices.Compact(set)
}

// imagePatterns reads IMAGES_TO_IGNORE: comma separated patterns matched against the whole
// canonical reference (registry/repository:tag[@digest], as docker.io/library/nginx:1.25), in
// which '*' stands for any run of characters, '/' included, and '?' for one. Patterns hold only
// characters a reference may hold, besides those two.
func (p *parser) imagePatterns() ([]string, []*regexp.Regexp) {
	v, _ := p.get(KeyImagesToIgnore)
	var given []string
	var compiled []*regexp.Regexp
	for _, pat := range splitList(v) {
		if reason := checkImagePattern(pat); reason != "" {
			p.errs = append(p.errs, fmt.Errorf("%s lists %s, which is not an image pattern (%s): fix it in %s to patterns like registry.k8s.io/* or */pause:*, comma separated", KeyImagesToIgnore, quote(pat), reason, p.where))
			continue
		}
		var b strings.Builder
		b.WriteString("^")
		for _, r := range pat {
			switch r {
			case '*':
				b.WriteString(".*")
			case '?':
				b.WriteString(".")
			default:
				b.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		b.WriteString("$")
		given = append(given, pat)
		compiled = append(compiled, regexp.MustCompile(b.String()))
	}
	return given, compiled
}

// checkImagePattern says why pat is not an IMAGES_TO_IGNORE pattern, or "".
func checkImagePattern(pat string) string {
	if strings.Trim(pat, "*?") == "" {
		return "it would ignore every image: list the images to ignore instead"
	}
	for i := 0; i < len(pat); i++ {
		c := pat[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("*?._-/:@[]", c) >= 0:
		default:
			return fmt.Sprintf("%q cannot appear in an image reference", c)
		}
	}
	return ""
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// quote quotes a value for an error message, cut to a readable length, with invalid UTF-8 and
// control characters escaped.
func quote(v string) string {
	const max = 64
	if len(v) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(v[cut]) {
			cut--
		}
		return strconv.Quote(v[:cut]) + "..."
	}
	return strconv.Quote(v)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
