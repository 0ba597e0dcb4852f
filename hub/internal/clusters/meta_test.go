package clusters

import (
	"strings"
	"testing"
	"unsafe"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/reference"

	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// A cached object's Meta answers what client-go's store and the hub ask of metadata, and reads
// the rest as zero whatever is set.
func TestMeta(t *testing.T) {
	g := NewWithT(t)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team-a", UID: "u1", ResourceVersion: "42",
		Generation: 3, Labels: map[string]string{"app": "web", v1alpha1.IgnoreLabel: v1alpha1.IgnoreValue},
		Annotations: map[string]string{"a": "b"}, Finalizers: []string{"f"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "example.com/v1", Kind: "App", Name: "web", UID: "o1", Controller: ptr(true)}}}}
	got, err := ProjectWorkload(d)
	g.Expect(err).NotTo(HaveOccurred())
	w := got.(*Workload)

	key, err := toolscache.MetaNamespaceKeyFunc(w)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(key).To(Equal("team-a/web"))
	g.Expect(w.GetUID()).To(BeEquivalentTo("u1"))
	g.Expect(w.GetResourceVersion()).To(Equal("42"))
	g.Expect(w.GetLabels()).To(Equal(map[string]string{v1alpha1.IgnoreLabel: v1alpha1.IgnoreValue}))
	g.Expect(metav1.GetControllerOfNoCopy(w).Name).To(Equal("web"))

	// What is not kept reads as zero, set or not.
	w.SetGeneration(7)
	w.SetAnnotations(map[string]string{"x": "y"})
	w.SetFinalizers([]string{"g"})
	g.Expect(w.GetGeneration()).To(BeZero())
	g.Expect(w.GetAnnotations()).To(BeNil())
	g.Expect(w.GetFinalizers()).To(BeNil())
	g.Expect(w.GetDeletionTimestamp()).To(BeNil())

	// An Event can refer to it: its TypeMeta names the kind.
	ref, err := reference.GetReference(testenv.Scheme(), w)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ref.Kind).To(Equal("Deployment"))
	g.Expect(ref.APIVersion).To(Equal("apps/v1"))
	g.Expect(ref.Namespace).To(Equal("team-a"))
	g.Expect(ref.Name).To(Equal("web"))
	g.Expect(ref.UID).To(BeEquivalentTo("u1"))
}

// A cached owner reference points at the shared constants for its API version, kind and flags,
// and a deep copy of it shares none of them: changing the copy changes no cached object.
func TestOwnersOf_shareConstantsButNotWithCopies(t *testing.T) {
	g := NewWithT(t)
	in := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-abc-x", OwnerReferences: []metav1.OwnerReference{{
		APIVersion: strings.Clone("apps/v1"), Kind: strings.Clone("ReplicaSet"), Name: "web-abc", UID: "o1",
		Controller: ptr(true), BlockOwnerDeletion: ptr(false)}}},
		Status: corev1.PodStatus{Phase: corev1.PodPhase(strings.Clone("Running"))}}
	got, err := ProjectPod(in)
	g.Expect(err).NotTo(HaveOccurred())
	p := got.(*Pod)
	owner := p.OwnerReferences[0]
	g.Expect(owner).To(Equal(in.OwnerReferences[0]))
	g.Expect(unsafe.StringData(owner.Kind)).To(Equal(unsafe.StringData(knownStrings["ReplicaSet"])))
	g.Expect(unsafe.StringData(owner.APIVersion)).To(Equal(unsafe.StringData(knownStrings["apps/v1"])))
	g.Expect(unsafe.StringData(string(p.Phase))).To(Equal(unsafe.StringData(knownStrings["Running"])))
	g.Expect(owner.Controller).To(BeIdenticalTo(&yes))
	g.Expect(owner.BlockOwnerDeletion).To(BeIdenticalTo(&no))

	c := p.DeepCopyObject().(*Pod)
	*c.OwnerReferences[0].Controller = false
	g.Expect(yes).To(BeTrue(), "a copy's flags are its own")
	g.Expect(*metav1.GetControllerOfNoCopy(p).Controller).To(BeTrue())

	// An owner of an unknown kind keeps its own strings.
	g.Expect(canonical("widgets.example.com/v1")).To(Equal("widgets.example.com/v1"))
	g.Expect(sharedFlag(nil)).To(BeNil())
}
