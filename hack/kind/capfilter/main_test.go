package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestSpecFiles_findsWhatRuncReads(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		// As containerd-shim-runc-v2 calls runc.
		{[]string{"--root", "/run/r", "--log", "/x/log.json", "--log-format", "json", "create", "--bundle", "/b", "--pid-file", "/b/pid", "id"}, []string{"/b/config.json"}},
		{[]string{"run", "--bundle=/b2", "id"}, []string{"/b2/config.json"}},
		{[]string{"create", "id"}, []string{"config.json"}},
		{[]string{"--root", "/run/r", "exec", "--process", "/tmp/p.json", "--detach", "id"}, []string{"/tmp/p.json"}},
		{[]string{"exec", "-p", "/tmp/q.json", "id"}, []string{"/tmp/q.json"}},
		{[]string{"--root", "/run/r", "start", "id"}, nil},
		{[]string{"--root", "/run/r", "delete", "--force", "id"}, nil},
	} {
		if got := specFiles(tc.args); !slices.Equal(got, tc.want) {
			t.Errorf("specFiles(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestFilterFile_dropsCapabilitiesOutsideTheBoundingSet(t *testing.T) {
	allowed := map[string]bool{"CAP_CHOWN": true, "CAP_SYS_ADMIN": true}
	all := []any{"CAP_CHOWN", "CAP_SYS_RESOURCE", "CAP_SYS_ADMIN"}
	caps := map[string]any{"bounding": all, "effective": all, "permitted": all}
	dir := t.TempDir()
	for name, doc := range map[string]map[string]any{
		"config.json":  {"ociVersion": "1.0.2", "process": map[string]any{"capabilities": caps, "args": []any{"/sbin/init"}}},
		"process.json": {"capabilities": caps, "args": []any{"sh"}},
	} {
		p := filepath.Join(dir, name)
		data, _ := json.Marshal(doc)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := filterFile(p, allowed); err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		data, _ = os.ReadFile(p)
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
		holder := got
		if p, ok := got["process"].(map[string]any); ok {
			holder = p
			if got["ociVersion"] != "1.0.2" {
				t.Errorf("%s: other fields lost: %s", name, data)
			}
		}
		for set, v := range holder["capabilities"].(map[string]any) {
			if l := v.([]any); len(l) != 2 || l[0] != "CAP_CHOWN" || l[1] != "CAP_SYS_ADMIN" {
				t.Errorf("%s: %s = %v, want CAP_CHOWN and CAP_SYS_ADMIN", name, set, l)
			}
		}
		if holder["args"] == nil {
			t.Errorf("%s: args lost: %s", name, data)
		}
	}
}
