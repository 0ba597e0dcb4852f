package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfiles checks, without Docker, what would make an image wrong: the builder's Go
// version behind go.mod's, a cgo binary on a base without libc, the wrong package, the binary
// not where ENTRYPOINT runs it, or root.
func TestDockerfiles(t *testing.T) {
	gomod, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	goMinor := string(m[1])
	for _, bin := range []string{"hub", "agent"} {
		t.Run(bin, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", bin, "Dockerfile"))
			if err != nil {
				t.Fatal(err)
			}
			df := string(b)
			var froms []string
			for _, l := range strings.Split(df, "\n") {
				if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], "FROM") {
					froms = append(froms, l)
				}
			}
			if len(froms) != 2 {
				t.Fatalf("want a build stage and a runtime stage, got FROM lines %q", froms)
			}
			if !strings.Contains(froms[0], "golang:"+goMinor+" ") {
				t.Errorf("build stage %q: want golang:%s, go.mod's version", froms[0], goMinor)
			}
			if strings.TrimSpace(froms[1]) != "FROM gcr.io/distroless/static:nonroot" {
				t.Errorf("runtime stage %q: want gcr.io/distroless/static:nonroot", froms[1])
			}
			for _, want := range []string{
				"CGO_ENABLED=0",
				"-o /out/" + bin + " ./" + bin + "\n",
				"COPY --from=build /out/" + bin + " /" + bin + "\n",
				"USER 65532:65532\n",
				`ENTRYPOINT ["/` + bin + `"]`,
			} {
				if !strings.Contains(df, want) {
					t.Errorf("Dockerfile lacks %q", want)
				}
			}
			if m := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(df, -1); len(m) != 1 {
				t.Errorf("want exactly one USER (the runtime stage's), got %v", m)
			}
			main, err := os.ReadFile(filepath.Join("..", bin, "main.go"))
			if err != nil || !regexp.MustCompile(`(?m)^package main$`).Match(main) {
				t.Errorf("./%s is not a main package: %v", bin, err)
			}
		})
	}
}
