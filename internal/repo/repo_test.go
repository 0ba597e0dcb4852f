package repo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoot_findsThisModuleFromAPackageDirectory(t *testing.T) {
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "hack", "test-deps.sh")); err != nil {
		t.Errorf("Root() = %s, which has no hack/test-deps.sh: %v", root, err)
	}
	wd, _ := os.Getwd()
	if !strings.HasPrefix(wd, root) {
		t.Errorf("Root() = %s is not above the working directory %s", root, wd)
	}
}

func TestRoot_failsOutsideTheModule(t *testing.T) {
	t.Chdir(t.TempDir())
	if root, err := Root(); err == nil {
		t.Errorf("Root() outside the module = %s, want an error", root)
	}
}

func TestScript_saysWhatToSetWhenTheScriptFails(t *testing.T) {
	_, err := Script("no-such-script.sh", "SOME_ENV")
	if err == nil || !strings.Contains(err.Error(), "or set SOME_ENV") {
		t.Errorf("Script of a missing script: %v, want an error naming SOME_ENV", err)
	}
}
