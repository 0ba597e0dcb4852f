package patcher

import (
	"fmt"

	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/image-cloner/image-cloner/internal/backups"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// SetupAll registers a Reconciler for every workload.Kinds() kind but Job, whose pod template
// is immutable once created: a Job's Pods are pointed at backups by the Pod mutating webhook,
// and a CronJob's future Jobs by patching the CronJob. The caller registers the field indexes
// (backups.SetupIndexes) first.
func SetupAll(mgr ctrl.Manager, lookup *backups.Lookup, policy backups.PolicyFunc, rec events.EventRecorder) ([]*Reconciler, error) {
	var out []*Reconciler
	for _, k := range workload.PatchableKinds() {
		r := &Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Kind: k, Lookup: lookup, Policy: policy, Recorder: rec}
		if err := r.SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("setting up patcher for %T: %w", k, err)
		}
		out = append(out, r)
	}
	return out, nil
}
