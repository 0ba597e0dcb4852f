package imageref

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Run with: go test -run='^$' -fuzz=FuzzParse -fuzztime=60s ./pkg/imageref/
func FuzzParse(f *testing.F) {
	for _, s := range injectivityCorpus() {
		f.Add(s)
	}
	f.Add("Nginx")
	f.Add("nginx:1.25@" + dig256)
	f.Add("[fe80::1]:5000/app:v1@" + dig512)
	f.Add("localhost:5000")

	f.Fuzz(func(t *testing.T, s string) {
		ref, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidReference) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalidReference", s, err)
			}
			if prefix := "invalid image reference " + strconv.Quote(s) + ": "; !strings.HasPrefix(err.Error(), prefix) {
				t.Fatalf("Parse(%q) error %q does not start with %q", s, err, prefix)
			}
			return
		}
		if ref.Registry == "" || ref.Repository == "" || (ref.Tag == "" && ref.Digest == "") {
			t.Fatalf("Parse(%q) = %#v, which names nothing", s, ref)
		}
		if len(ref.Repository) > maxNameLength {
			t.Fatalf("Parse(%q) = %#v, a repository path longer than %d", s, ref, maxNameLength)
		}
		again, err := Parse(ref.String())
		if err != nil {
			t.Fatalf("Parse(%q).String() = %q does not parse: %v", s, ref, err)
		}
		if again != ref {
			t.Fatalf("Parse(%q) = %#v, but its String() %q parses to %#v", s, ref, ref, again)
		}
	})
}

// Run with: go test -run='^$' -fuzz=FuzzBackupName -fuzztime=60s ./pkg/imageref/
func FuzzBackupName(f *testing.F) {
	corpus := injectivityCorpus()
	for i, a := range corpus {
		f.Add(a, corpus[(i+1)%len(corpus)])
	}
	f.Add("a_b/c", "a/b_c")
	f.Add("a:5000/x", "a-5000/x")
	f.Add("a.com:5000/x", "a.com/5000/x")
	f.Add("nginx", "docker.io/library/nginx:latest")
	f.Add("quay.io/acme/x", "quay.io/acmecorp/x")

	namers := testNamers(f)
	f.Fuzz(func(t *testing.T, a, b string) {
		refA, errA := Parse(a)
		refB, errB := Parse(b)
		if errA != nil || errB != nil {
			return
		}

		nameA, nameB := ObjectName(refA), ObjectName(refB)
		for _, name := range []string{nameA, nameB} {
			if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
				t.Fatalf("object name %q is not a DNS-1123 subdomain: %v", name, msgs)
			}
		}
		if (nameA == nameB) != (refA == refB) {
			t.Fatalf("%s and %s have object names %q and %q", refA, refB, nameA, nameB)
		}

		for label, n := range namers {
			backupA, okA := fuzzBackup(t, label, n, refA)
			backupB, okB := fuzzBackup(t, label, n, refB)
			if !okA || !okB {
				continue
			}
			if (backupA.Repository == backupB.Repository) != (refA.Name() == refB.Name()) {
				t.Fatalf("%s: %s and %s have backups %s and %s", label, refA, refB, backupA, backupB)
			}
		}
	})
}

// fuzzBackup checks what holds for any one backup name, and returns it with
// false if src is itself a backup.
func fuzzBackup(t *testing.T, label string, n *Namer, src Reference) (Reference, bool) {
	t.Helper()
	backup, err := n.Backup(src)
	if n.IsBackup(src) {
		if err == nil {
			t.Fatalf("%s: %s is a backup but Backup named it %s", label, src, backup)
		}
		return Reference{}, false
	}
	if err != nil {
		t.Fatalf("%s: Backup(%s): %v", label, src, err)
	}
	again, err := Parse(backup.String())
	if err != nil {
		t.Fatalf("%s: backup %s of %s does not parse: %v", label, backup, src, err)
	}
	if again != backup {
		t.Fatalf("%s: backup %#v of %s parses to %#v", label, backup, src, again)
	}
	if !n.IsBackup(backup) {
		t.Fatalf("%s: backup %s of %s is not recognised as one", label, backup, src)
	}
	if backup.Digest != src.Digest || (src.Tag != "" && backup.Tag != src.Tag) {
		t.Fatalf("%s: backup %s of %s does not keep its tag and digest", label, backup, src)
	}
	return backup, true
}
