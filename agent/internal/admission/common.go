package admission

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/image-cloner/image-cloner/internal/backups"
	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// Paths the webhooks are served at; deploy/webhooks uses the same. The first two are the seed's.
const (
	ValidateDeploymentPath  = "/validate-deployment"
	ValidateDaemonSetPath   = "/validate-daemonset"
	ValidateStatefulSetPath = "/validate-statefulset"
	ValidateJobPath         = "/validate-job"
	ValidateCronJobPath     = "/validate-cronjob"

	MutatePodPath         = "/mutate-pod"
	MutateDeploymentPath  = "/mutate-deployment"
	MutateDaemonSetPath   = "/mutate-daemonset"
	MutateStatefulSetPath = "/mutate-statefulset"
	MutateJobPath         = "/mutate-job"
	MutateCronJobPath     = "/mutate-cronjob"
)

// ValidatePaths and MutatePaths list every path Register serves.
var (
	ValidatePaths = []string{ValidateDeploymentPath, ValidateDaemonSetPath, ValidateStatefulSetPath, ValidateJobPath, ValidateCronJobPath}
	MutatePaths   = []string{MutatePodPath, MutateDeploymentPath, MutateDaemonSetPath, MutateStatefulSetPath, MutateJobPath, MutateCronJobPath}
)

// Register serves v at ValidatePaths and m at MutatePaths.
func Register(server webhook.Server, v *Validator, m *Mutator) {
	for _, p := range ValidatePaths {
		server.Register(p, &webhook.Admission{Handler: v})
	}
	for _, p := range MutatePaths {
		server.Register(p, &webhook.Admission{Handler: m})
	}
}

// newObject returns an empty object of the kind a request is about, nil for another kind.
func newObject(req admission.Request) client.Object {
	switch req.Kind.Group + "/" + req.Kind.Kind {
	case "apps/Deployment":
		return &appsv1.Deployment{}
	case "apps/DaemonSet":
		return &appsv1.DaemonSet{}
	case "apps/StatefulSet":
		return &appsv1.StatefulSet{}
	case "batch/Job":
		return &batchv1.Job{}
	case "batch/CronJob":
		return &batchv1.CronJob{}
	case "/Pod":
		return &corev1.Pod{}
	}
	return nil
}

// excluded says why namespace ns is not for the webhooks, "" when it is.
func excluded(ctx context.Context, r client.Reader, s *backups.Policy, ns string) (string, error) {
	if ns == "" {
		return "not namespaced", nil
	}
	if s.Ignored(ns) {
		return "namespace ignored", nil
	}
	namespace := &corev1.Namespace{}
	if err := r.Get(ctx, client.ObjectKey{Name: ns}, namespace); err != nil {
		if apierrors.IsNotFound(err) {
			return "", nil
		}
		return "", fmt.Errorf("getting namespace %s: %w", ns, err)
	}
	if namespace.Labels[apiv1.ValidateBackupsLabel] == apiv1.ValidateBackupsDisabled {
		return "namespace opted out with label " + apiv1.ValidateBackupsLabel + "=" + apiv1.ValidateBackupsDisabled, nil
	}
	return "", nil
}

// allowUnjudged admits a request the webhook could not judge, saying why: image-cloner must
// never be the reason a cluster cannot deploy.
func allowUnjudged(err error) admission.Response {
	return admission.Allowed("").WithWarnings(
		"image-cloner could not check this object's images and admitted it: " + oneLine(err.Error()))
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

func isDryRun(req admission.Request) bool { return req.DryRun != nil && *req.DryRun }
