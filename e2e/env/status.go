package env

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// MemberStatus is what a person watching the demo wants to know about one member.
type MemberStatus struct {
	Name string
	// Images counts the member's ClonedImages; Ready those that are Ready.
	Images, Ready int
	// Workloads counts the Deployments and DaemonSets in SampleNamespace; Patched those whose
	// every container runs from the backup registry.
	Workloads, Patched int
}

// Done says every ClonedImage is Ready, there is at least one, and every workload is patched.
func (s MemberStatus) Done() bool {
	return s.Images > 0 && s.Ready == s.Images && s.Workloads > 0 && s.Patched == s.Workloads
}

func (s MemberStatus) String() string {
	return fmt.Sprintf("%s %d/%d images Ready, %d/%d workloads patched", s.Name, s.Ready, s.Images, s.Patched, s.Workloads)
}

// Status is the fleet's MemberStatus, one per member.
type Status []MemberStatus

// Done says every member is Done.
func (s Status) Done() bool {
	for _, m := range s {
		if !m.Done() {
			return false
		}
	}
	return len(s) > 0
}

func (s Status) String() string {
	parts := make([]string, len(s))
	for i, m := range s {
		parts[i] = m.String()
	}
	return strings.Join(parts, "; ")
}

// Status reads each member's ClonedImages and sample workloads.
func (e *Env) Status(ctx context.Context) (Status, error) {
	var out Status
	for _, m := range e.Members {
		s := MemberStatus{Name: m.Name}
		var cis v1alpha1.ClonedImageList
		if err := m.Client.List(ctx, &cis); err != nil {
			return nil, fmt.Errorf("listing ClonedImages in %s: %w", m.Name, err)
		}
		for _, ci := range cis.Items {
			s.Images++
			if ci.IsReady() {
				s.Ready++
			}
		}
		var deps appsv1.DeploymentList
		if err := m.Client.List(ctx, &deps, client.InNamespace(SampleNamespace)); err != nil {
			return nil, err
		}
		var dss appsv1.DaemonSetList
		if err := m.Client.List(ctx, &dss, client.InNamespace(SampleNamespace)); err != nil {
			return nil, err
		}
		for _, d := range deps.Items {
			s.Workloads++
			if e.fromBackup(d.Spec.Template.Spec.InitContainers, d.Spec.Template.Spec.Containers) {
				s.Patched++
			}
		}
		for _, d := range dss.Items {
			s.Workloads++
			if e.fromBackup(d.Spec.Template.Spec.InitContainers, d.Spec.Template.Spec.Containers) {
				s.Patched++
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// fromBackup says every container's image is under the backup registry.
func (e *Env) fromBackup(lists ...[]corev1.Container) bool {
	n := 0
	for _, cs := range lists {
		for _, c := range cs {
			if !strings.HasPrefix(c.Image, e.BackupRegistry+"/") {
				return false
			}
			n++
		}
	}
	return n > 0
}
