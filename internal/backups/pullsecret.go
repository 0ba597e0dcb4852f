package backups

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// AddedPullSecretAnnotation marks a workload or Pod whose imagePullSecrets entry
// apiv1.NamespacePullSecretName image-cloner added, so that restoring removes only what it added.
const AddedPullSecretAnnotation = "image-cloner.io/added-pull-secret"

// AddPullSecret references apiv1.NamespacePullSecretName from obj's pod spec, unless it already
// does, and marks obj with AddedPullSecretAnnotation. It reports whether it changed obj.
func AddPullSecret(obj client.Object) (bool, error) {
	spec, err := workload.PodSpec(obj)
	if err != nil {
		return false, err
	}
	if slices.ContainsFunc(spec.ImagePullSecrets, isPullSecret) {
		return false, nil
	}
	spec.ImagePullSecrets = append(spec.ImagePullSecrets, corev1.LocalObjectReference{Name: apiv1.NamespacePullSecretName})
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AddedPullSecretAnnotation] = "true"
	obj.SetAnnotations(ann)
	return true, nil
}

// RemovePullSecret undoes AddPullSecret: when obj carries AddedPullSecretAnnotation, it drops
// the entry and the annotation. Entries the owner wrote are kept.
func RemovePullSecret(obj client.Object) error {
	ann := obj.GetAnnotations()
	if _, ok := ann[AddedPullSecretAnnotation]; !ok {
		return nil
	}
	spec, err := workload.PodSpec(obj)
	if err != nil {
		return err
	}
	spec.ImagePullSecrets = slices.DeleteFunc(spec.ImagePullSecrets, isPullSecret)
	if len(spec.ImagePullSecrets) == 0 {
		spec.ImagePullSecrets = nil
	}
	delete(ann, AddedPullSecretAnnotation)
	obj.SetAnnotations(ann)
	return nil
}

func isPullSecret(l corev1.LocalObjectReference) bool { return l.Name == apiv1.NamespacePullSecretName }
