package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/image-cloner/image-cloner/internal/repo"
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
	dir, err := repo.Script("test-deps.sh", AssetsEnv)
	if err != nil {
		return "", err
	}
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
func RepoRoot() (string, error) { return repo.Root() }
