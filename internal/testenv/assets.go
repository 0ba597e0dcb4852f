package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// AssetsEnv names the directory holding kube-apiserver, etcd, kubectl and registry.
const AssetsEnv = "IMAGE_CLONER_ASSETS"

var (
	assetsOnce sync.Once
	assetsDir  string
	assetsErr  error
)

// Assets returns the directory of the control-plane and registry binaries: $IMAGE_CLONER_ASSETS
// when set, otherwise the last line printed by hack/test-deps.sh, which builds what is missing.
func Assets() (string, error) {
	assetsOnce.Do(func() {
		assetsDir, assetsErr = findAssets()
	})
	return assetsDir, assetsErr
}

func findAssets() (string, error) {
	if dir := os.Getenv(AssetsEnv); dir != "" {
		return dir, checkAssets(dir)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "hack", "test-deps.sh")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", script)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("running %s (or set %s): %w\n%s", script, AssetsEnv, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := lines[len(lines)-1]
	return dir, checkAssets(dir)
}

func checkAssets(dir string) error {
	for _, bin := range []string{"kube-apiserver", "etcd", "kubectl", "registry"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return fmt.Errorf("%s is missing from %s: run 'make test-deps'", bin, dir)
		}
	}
	return nil
}

// RepoRoot returns the root of the image-cloner module, found by walking up from the working
// directory (go test runs each package in its own directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository root: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(data, []byte("module github.com/image-cloner/image-cloner\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("finding the repository root: no go.mod of github.com/image-cloner/image-cloner above the working directory")
		}
		dir = parent
	}
}
