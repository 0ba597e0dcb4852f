// Package agenttest holds the create-and-wait helpers the agent's envtest suites share:
// namespaces, ClonedImages in a given phase and one workload of every kind.
package agenttest

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/imageref"
)

// Digest is a digest for Ready ClonedImages in tests.
const Digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

// Namespace creates a namespace with a generated name and the given labels.
func Namespace(ctx context.Context, c client.Client, labels map[string]string) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-", Labels: labels}}
	if err := c.Create(ctx, ns); err != nil {
		return "", err
	}
	return ns.Name, nil
}

// EnsureNamespace creates namespace name if it does not exist.
func EnsureNamespace(ctx context.Context, c client.Client, name string) error {
	err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !isAlreadyExists(err) {
		return err
	}
	return nil
}

// ClonedImage creates (or, when the agent created it, takes) the ClonedImage for image and sets
// the given phase; a Ready one gets backup and Digest.
func ClonedImage(ctx context.Context, c client.Client, image string, phase apiv1.Phase, backup string) (*apiv1.ClonedImage, error) {
	ref, err := imageref.Parse(image)
	if err != nil {
		return nil, err
	}
	ci := &apiv1.ClonedImage{
		ObjectMeta: metav1.ObjectMeta{Name: imageref.ObjectName(ref)},
		Spec:       apiv1.ClonedImageSpec{Source: ref.String()},
	}
	err = c.Create(ctx, ci)
	if apierrors.IsAlreadyExists(err) {
		// The agent's webhook requested it: the hub's part is the status.
		err = c.Get(ctx, client.ObjectKeyFromObject(ci), ci)
	}
	if err != nil {
		return nil, fmt.Errorf("creating ClonedImage for %s: %w", image, err)
	}
	return ci, SetPhase(ctx, c, ci, phase, backup)
}

// SetPhase writes ci's status as the hub would.
func SetPhase(ctx context.Context, c client.Client, ci *apiv1.ClonedImage, phase apiv1.Phase, backup string) error {
	ci.Status.Phase = phase
	if phase == apiv1.PhaseReady {
		ci.Status.Backup = backup
		ci.Status.Digest = Digest
	}
	return c.Status().Update(ctx, ci)
}

// PodSpec is a pod spec with an init container and a container.
func PodSpec(initImage, image string) corev1.PodSpec {
	return corev1.PodSpec{
		RestartPolicy:  corev1.RestartPolicyAlways,
		InitContainers: []corev1.Container{{Name: "init", Image: initImage}},
		Containers:     []corev1.Container{{Name: "main", Image: image}},
	}
}

// Workloads returns one unsaved workload of every kind in namespace ns, named after its kind,
// each with PodSpec(initImage, image).
func Workloads(ns, initImage, image string) []client.Object {
	labels := map[string]string{"app": "test"}
	tmpl := func(restart corev1.RestartPolicy) corev1.PodTemplateSpec {
		s := PodSpec(initImage, image)
		s.RestartPolicy = restart
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: s}
	}
	sel := &metav1.LabelSelector{MatchLabels: labels}
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }
	return []client.Object{
		&appsv1.Deployment{ObjectMeta: meta("deployment"), Spec: appsv1.DeploymentSpec{Selector: sel, Template: tmpl(corev1.RestartPolicyAlways)}},
		&appsv1.DaemonSet{ObjectMeta: meta("daemonset"), Spec: appsv1.DaemonSetSpec{Selector: sel, Template: tmpl(corev1.RestartPolicyAlways)}},
		&appsv1.StatefulSet{ObjectMeta: meta("statefulset"), Spec: appsv1.StatefulSetSpec{Selector: sel, Template: tmpl(corev1.RestartPolicyAlways)}},
		&batchv1.Job{ObjectMeta: meta("job"), Spec: batchv1.JobSpec{Template: tmpl(corev1.RestartPolicyNever)}},
		&batchv1.CronJob{ObjectMeta: meta("cronjob"), Spec: batchv1.CronJobSpec{Schedule: "0 0 * * *",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl(corev1.RestartPolicyNever)}}}},
	}
}

// Deployment returns an unsaved Deployment named name in ns with PodSpec(initImage, image).
func Deployment(ns, name, initImage, image string) *appsv1.Deployment {
	d := Workloads(ns, initImage, image)[0].(*appsv1.Deployment)
	d.Name = name
	return d
}

// Pod returns an unsaved Pod in ns with PodSpec(initImage, image).
func Pod(ns, name, initImage, image string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: PodSpec(initImage, image)}
}

func isAlreadyExists(err error) bool { return apierrors.IsAlreadyExists(err) }
