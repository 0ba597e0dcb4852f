package clusters

import (
	"maps"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Meta is the object metadata a cached Workload or Pod keeps: what the hub reads of it, in 96
// bytes where metav1.ObjectMeta takes 232 (a cached object is a few hundred bytes in all, so
// that is a fifth of it). It implements metav1.Object, as client-go's store, the indexes and
// Events need; the fields it does not keep read as their zero value, and setting them does
// nothing.
type Meta struct {
	Name, Namespace string
	UID             types.UID
	ResourceVersion string
	// Labels holds only the opt-out label, if the object has it (usually nil).
	Labels          map[string]string
	OwnerReferences []metav1.OwnerReference
}

var _ metav1.Object = &Meta{}

// metaOf is what of obj's metadata a cached object keeps.
func metaOf(obj metav1.Object) Meta {
	return Meta{
		Name:            obj.GetName(),
		Namespace:       obj.GetNamespace(),
		UID:             obj.GetUID(),
		ResourceVersion: obj.GetResourceVersion(),
		Labels:          keep(obj.GetLabels(), keptLabels),
		OwnerReferences: ownersOf(obj.GetOwnerReferences()),
	}
}

// knownStrings are the owner API versions and kinds of nearly every Pod and Job, and the Pod
// phases: a cached object points at these constants instead of holding a decoded copy of each
// (about 50 bytes a Pod).
var knownStrings = func() map[string]string {
	out := map[string]string{}
	for _, s := range []string{"v1", "apps/v1", "batch/v1", "ReplicaSet", "DaemonSet", "StatefulSet", "Job", "CronJob", "Node",
		"Pending", "Running", "Succeeded", "Failed", "Unknown"} {
		out[s] = s
	}
	return out
}()

// canonical returns the constant equal to s, if knownStrings has it, or s.
func canonical(s string) string {
	if c, ok := knownStrings[s]; ok {
		return c
	}
	return s
}

// yes and no are the Controller and BlockOwnerDeletion flags of every cached owner reference:
// cached objects are read only, and a deep copy gets flags of its own.
var yes, no = true, false

func sharedFlag(b *bool) *bool {
	switch {
	case b == nil:
		return nil
	case *b:
		return &yes
	default:
		return &no
	}
}

// ownersOf is what a cached object keeps of refs: all of each, the API version, kind and flags
// shared.
func ownersOf(refs []metav1.OwnerReference) []metav1.OwnerReference {
	if len(refs) == 0 {
		return nil
	}
	out := make([]metav1.OwnerReference, len(refs))
	for i, r := range refs {
		out[i] = metav1.OwnerReference{APIVersion: canonical(r.APIVersion), Kind: canonical(r.Kind), Name: r.Name, UID: r.UID,
			Controller: sharedFlag(r.Controller), BlockOwnerDeletion: sharedFlag(r.BlockOwnerDeletion)}
	}
	return out
}

// deepCopy returns a copy of m that shares nothing with it.
func (m Meta) deepCopy() Meta {
	out := m
	out.Labels = maps.Clone(m.Labels)
	if m.OwnerReferences != nil {
		out.OwnerReferences = make([]metav1.OwnerReference, len(m.OwnerReferences))
		for i := range m.OwnerReferences {
			m.OwnerReferences[i].DeepCopyInto(&out.OwnerReferences[i])
		}
	}
	return out
}

func (m *Meta) GetNamespace() string                        { return m.Namespace }
func (m *Meta) SetNamespace(namespace string)               { m.Namespace = namespace }
func (m *Meta) GetName() string                             { return m.Name }
func (m *Meta) SetName(name string)                         { m.Name = name }
func (m *Meta) GetUID() types.UID                           { return m.UID }
func (m *Meta) SetUID(uid types.UID)                        { m.UID = uid }
func (m *Meta) GetResourceVersion() string                  { return m.ResourceVersion }
func (m *Meta) SetResourceVersion(version string)           { m.ResourceVersion = version }
func (m *Meta) GetLabels() map[string]string                { return m.Labels }
func (m *Meta) SetLabels(labels map[string]string)          { m.Labels = labels }
func (m *Meta) GetOwnerReferences() []metav1.OwnerReference { return m.OwnerReferences }
func (m *Meta) SetOwnerReferences(refs []metav1.OwnerReference) {
	m.OwnerReferences = slices.Clone(refs)
}

// What a cached object does not keep.

func (m *Meta) GetGenerateName() string                       { return "" }
func (m *Meta) SetGenerateName(string)                        {}
func (m *Meta) GetGeneration() int64                          { return 0 }
func (m *Meta) SetGeneration(int64)                           {}
func (m *Meta) GetSelfLink() string                           { return "" }
func (m *Meta) SetSelfLink(string)                            {}
func (m *Meta) GetCreationTimestamp() metav1.Time             { return metav1.Time{} }
func (m *Meta) SetCreationTimestamp(metav1.Time)              {}
func (m *Meta) GetDeletionTimestamp() *metav1.Time            { return nil }
func (m *Meta) SetDeletionTimestamp(*metav1.Time)             {}
func (m *Meta) GetDeletionGracePeriodSeconds() *int64         { return nil }
func (m *Meta) SetDeletionGracePeriodSeconds(*int64)          {}
func (m *Meta) GetAnnotations() map[string]string             { return nil }
func (m *Meta) SetAnnotations(map[string]string)              {}
func (m *Meta) GetFinalizers() []string                       { return nil }
func (m *Meta) SetFinalizers([]string)                        {}
func (m *Meta) GetManagedFields() []metav1.ManagedFieldsEntry { return nil }
func (m *Meta) SetManagedFields([]metav1.ManagedFieldsEntry)  {}
