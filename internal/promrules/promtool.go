package promrules

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/image-cloner/image-cloner/internal/repo"
)

// PromtoolEnv names the promtool binary to use; without it, Promtool runs hack/promtool.sh,
// which builds it once (cached by version) and prints its path.
const PromtoolEnv = "IMAGE_CLONER_PROMTOOL"

var (
	promtoolOnce sync.Once
	promtoolPath string
	promtoolErr  error
)

// Promtool returns the path of promtool.
func Promtool() (string, error) {
	promtoolOnce.Do(func() { promtoolPath, promtoolErr = findPromtool() })
	return promtoolPath, promtoolErr
}

func findPromtool() (string, error) {
	if p := os.Getenv(PromtoolEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", PromtoolEnv, p, err)
		}
		return p, nil
	}
	return repo.Script("promtool.sh", PromtoolEnv)
}

// RepoRoot returns the directory of this module's go.mod, from the working directory up.
func RepoRoot() (string, error) { return repo.Root() }

// Prepare writes what `promtool test rules` needs into dir: the spec of the PrometheusRule
// at rulePath as the rule file the unit tests at testPath name (their only rule_files entry),
// and a copy of the tests. It returns the tests' path in dir.
func Prepare(dir, rulePath, testPath string) (string, error) {
	pr, err := LoadPrometheusRule(rulePath)
	if err != nil {
		return "", err
	}
	u, err := LoadUnitTests(testPath)
	if err != nil {
		return "", err
	}
	if len(u.RuleFiles) != 1 || filepath.Base(u.RuleFiles[0]) != u.RuleFiles[0] {
		return "", fmt.Errorf("%s: rule_files %v, want one file name", testPath, u.RuleFiles)
	}
	if err := WriteRuleFile(pr.Spec, filepath.Join(dir, u.RuleFiles[0])); err != nil {
		return "", err
	}
	data, err := os.ReadFile(testPath)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, filepath.Base(testPath))
	return out, os.WriteFile(out, data, 0o600)
}

// Run runs promtool with args and returns its combined output.
func Run(args ...string) (string, error) {
	p, err := Promtool()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(p, args...).CombinedOutput()
	return string(out), err
}
