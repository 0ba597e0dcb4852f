package env

import "testing"

func TestStatus_doneOnlyWhenEveryImageReadyAndWorkloadPatched(t *testing.T) {
	done := MemberStatus{Name: "m1", Images: 3, Ready: 3, Workloads: 2, Patched: 2}
	for _, tc := range []struct {
		name string
		s    Status
		want bool
	}{
		{"all done", Status{done, {Name: "m2", Images: 1, Ready: 1, Workloads: 1, Patched: 1}}, true},
		{"no members", Status{}, false},
		{"an image not Ready", Status{done, {Name: "m2", Images: 2, Ready: 1, Workloads: 1, Patched: 1}}, false},
		{"a workload not patched", Status{done, {Name: "m2", Images: 1, Ready: 1, Workloads: 2, Patched: 1}}, false},
		{"nothing seen yet", Status{done, {Name: "m2"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.Done(); got != tc.want {
				t.Errorf("%s: Done() = %v, want %v", tc.s, got, tc.want)
			}
		})
	}
	if got, want := done.String(), "m1 3/3 images Ready, 2/2 workloads patched"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
