// Package kindconfig_test checks kind-config/ without Docker: every kind config decodes strictly
// into kind's public v1alpha4 types and takes their defaults, its containerd patches are TOML
// that point containerd at hosts.toml files (never the deprecated registry.mirrors), the
// hosts.toml template decodes with no unknown key, and the scripts are valid bash.
package kindconfig_test

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

// loadCluster decodes a kind config as kind would reject it: unknown or misspelt fields fail.
func loadCluster(data []byte) (*v1alpha4.Cluster, error) {
	var c v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, err
	}
	if c.Kind != "Cluster" || c.APIVersion != "kind.x-k8s.io/v1alpha4" {
		return nil, fmt.Errorf("kind %q apiVersion %q: want Cluster kind.x-k8s.io/v1alpha4", c.Kind, c.APIVersion)
	}
	v1alpha4.SetDefaultsCluster(&c)
	return &c, nil
}

// checkCluster returns what is wrong with a defaulted config of cluster name.
func checkCluster(c *v1alpha4.Cluster, name string) []string {
	var problems []string
	if c.Name != name {
		problems = append(problems, fmt.Sprintf("name %q, want %q (up.sh and README use it)", c.Name, name))
	}
	controlPlanes := 0
	for _, n := range c.Nodes {
		if n.Role == v1alpha4.ControlPlaneRole {
			controlPlanes++
		}
		if n.Role != v1alpha4.ControlPlaneRole && n.Role != v1alpha4.WorkerRole {
			problems = append(problems, fmt.Sprintf("node role %q", n.Role))
		}
	}
	if controlPlanes == 0 {
		problems = append(problems, "no control-plane node")
	}
	if c.Networking.IPFamily != v1alpha4.IPv4Family {
		problems = append(problems, fmt.Sprintf("ipFamily %q after defaults, want ipv4", c.Networking.IPFamily))
	}
	if len(c.ContainerdConfigPatches) == 0 {
		problems = append(problems, "no containerdConfigPatches setting config_path")
	}
	configPath := ""
	for i, p := range c.ContainerdConfigPatches {
		var patch map[string]any
		if _, err := toml.Decode(p, &patch); err != nil {
			problems = append(problems, fmt.Sprintf("containerdConfigPatches[%d] is not TOML: %v", i, err))
			continue
		}
		plugins, _ := patch["plugins"].(map[string]any)
		for plugin, v := range plugins {
			registry, _ := v.(map[string]any)["registry"].(map[string]any)
			for _, deprecated := range []string{"mirrors", "configs", "auths"} {
				if _, ok := registry[deprecated]; ok {
					problems = append(problems, fmt.Sprintf("containerdConfigPatches[%d] sets %s.registry.%s: deprecated, use hosts.toml under config_path", i, plugin, deprecated))
				}
			}
			if p, ok := registry["config_path"].(string); ok && plugin == "io.containerd.grpc.v1.cri" {
				configPath = p
			}
		}
	}
	if configPath != "/etc/containerd/certs.d" {
		problems = append(problems, fmt.Sprintf(`plugins."io.containerd.grpc.v1.cri".registry.config_path is %q, want /etc/containerd/certs.d (where up.sh writes hosts.toml)`, configPath))
	}
	return problems
}

func TestKindConfigs(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile("up.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^clusters=\(([^)]*)\)`).FindSubmatch(script)
	if m == nil {
		t.Fatal("up.sh has no clusters=(...) line")
	}
	want := strings.Fields(string(m[1]))
	// up.sh must put the template where the configs point containerd (checkCluster).
	for _, s := range []string{`/etc/containerd/certs.d/$host/hosts.toml" < containerd/hosts.toml`, `"localhost:${reg_port}"`} {
		if !strings.Contains(string(script), s) {
			t.Errorf("up.sh no longer contains %s", s)
		}
	}
	var got []string
	for _, f := range files {
		got = append(got, strings.TrimSuffix(f, ".yaml"))
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c, err := loadCluster(data)
			if err != nil {
				t.Fatalf("kind would reject %s: %v", f, err)
			}
			for _, p := range checkCluster(c, "image-cloner-"+strings.TrimSuffix(f, ".yaml")) {
				t.Error(p)
			}
		})
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) || !slices.Contains(got, "hub") || len(got) < 3 {
		t.Errorf("configs %v, up.sh creates %v: want the same set, a hub and two members", got, want)
	}
}

// TestLoadCluster_rejectsBrokenConfigs makes sure the checks above can fail.
func TestLoadCluster_rejectsBrokenConfigs(t *testing.T) {
	good, err := os.ReadFile("member-1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadCluster(good); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"misspelt field": strings.Replace(string(good), "nodes:", "node:", 1),
		"wrong version":  strings.Replace(string(good), "v1alpha4", "v1alpha3", 1),
		"not YAML":       string(good) + "\n  - role: [",
	} {
		if _, err := loadCluster([]byte(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, patch := range map[string]string{
		"mirrors": `[plugins."io.containerd.grpc.v1.cri".registry.mirrors."localhost:5001"]
  endpoint = ["http://kind-registry:5000"]`,
		"not TOML":  `[plugins."io.containerd.grpc.v1.cri".registry`,
		"no config": `[plugins."io.containerd.grpc.v1.cri"]`,
	} {
		c, _ := loadCluster(good)
		c.ContainerdConfigPatches = []string{patch}
		if len(checkCluster(c, c.Name)) == 0 {
			t.Errorf("patch %s: accepted", name)
		}
	}
}

// hostsFile is containerd's hosts.toml (docs/hosts.md), the keys this repository may use.
type hostsFile struct {
	Server string `toml:"server"`
	Host   map[string]struct {
		Capabilities []string `toml:"capabilities"`
		SkipVerify   bool     `toml:"skip_verify"`
		CA           any      `toml:"ca"`
		OverridePath bool     `toml:"override_path"`
	} `toml:"host"`
}

func TestHostsTOML(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("containerd", "*.toml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no hosts.toml under containerd/: %v", err)
	}
	for _, f := range files {
		var h hostsFile
		md, err := toml.DecodeFile(f, &h)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if u := md.Undecoded(); len(u) > 0 {
			t.Errorf("%s: keys containerd does not know: %v", f, u)
		}
		if len(h.Host) == 0 {
			t.Errorf("%s: no [host.\"...\"] table: containerd would go to the registry named in the image", f)
		}
		for _, s := range append([]string{h.Server}, keys(h.Host)...) {
			if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				t.Errorf("%s: %q is not an http(s) URL", f, s)
			}
		}
		for host, c := range h.Host {
			for _, capability := range c.Capabilities {
				if capability != "pull" && capability != "resolve" && capability != "push" {
					t.Errorf("%s: host %s: unknown capability %q", f, host, capability)
				}
			}
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestScripts_parse(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	for _, s := range []string{"up.sh", "down.sh", "../hack/e2e-kind.sh"} {
		if out, err := exec.Command(bash, "-n", s).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
	}
}

// TestE2EKind_saysWhatIsMissing runs make e2e-kind's script where a prerequisite is missing: it
// must stop at once, before touching anything, and name what is missing. Each case gets a PATH
// of stubs: docker absent, docker present but no engine answering, kind absent.
func TestE2EKind_saysWhatIsMissing(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script, err := filepath.Abs("../hack/e2e-kind.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		stubs map[string]string // command -> script body
		want  string
	}{
		{"no docker", map[string]string{}, "docker not found"},
		{"no engine", map[string]string{"docker": "exit 1"}, "no Docker engine answers"},
		{"no kind", map[string]string{"docker": "exit 0"}, "kind not found"},
		{"no kubectl", map[string]string{"docker": "exit 0", "kind": "exit 0"}, "kubectl not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			// The script's own tools (dirname, git, ...) stay reachable; docker, kind and kubectl
			// only through the stubs.
			for _, tool := range []string{"dirname", "git", "head", "base64", "tr", "mkdir", "cat"} {
				if p, err := exec.LookPath(tool); err == nil {
					if err := os.Symlink(p, filepath.Join(dir, tool)); err != nil {
						t.Fatal(err)
					}
				}
			}
			for name, body := range tc.stubs {
				if err := os.WriteFile(filepath.Join(dir, name), []byte("#!"+bash+"\n"+body+"\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(bash, script)
			cmd.Env = []string{"PATH=" + dir, "HOME=" + t.TempDir()}
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the script succeeded without %s:\n%s", tc.name, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output %q does not say %q", out, tc.want)
			}
			if strings.Contains(string(out), "==>") {
				t.Errorf("the script started working before checking its prerequisites:\n%s", out)
			}
		})
	}
}
