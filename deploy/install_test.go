package deploy_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/internal/backups"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// TestMakeInstallUninstall runs `make install` and `make uninstall` as a user would, with the
// kubectl built by test-deps, against a real kube-apiserver: install applies the single-cluster
// overlay and sets BACKUP_REGISTRY, a second install keeps it, and uninstall restores a workload
// the agent had patched, then removes the webhooks, the CRD, the namespace and the pull Secret
// copies. The API server runs no controllers, so the test plays the namespace controller
// (finalizes the namespace once kubectl deletes it) and no pod ever runs.
func TestMakeInstallUninstall(t *testing.T) {
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Fatal("make is needed to test make install/uninstall")
	}
	assets, err := testenv.Assets()
	if err != nil {
		t.Fatal(err)
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cluster := testenv.StartCluster(t, testenv.ClusterOptions{Name: "install"})
	c := cluster.Client
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, mk, append([]string{"-C", root, "KUBECTL=" + filepath.Join(assets, "kubectl"), "BIN=" + bin}, args...)...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.KubeconfigPath, "MAKEFLAGS=")
		out, err := cmd.CombinedOutput()
		t.Logf("make %s:\n%s", strings.Join(args, " "), out)
		if err != nil {
			t.Fatalf("make %s: %v", strings.Join(args, " "), err)
		}
	}
	const ns = "image-cloner-system"

	// agent/README.md's `kubectl apply -f deploy/crds` must keep working beside the kustomize
	// base there (deploy/crds/Kustomization, which kubectl skips for its missing extension).
	kubectl := exec.CommandContext(ctx, filepath.Join(assets, "kubectl"), "apply", "--dry-run=server", "-f", filepath.Join(root, "deploy", "crds"))
	kubectl.Env = append(os.Environ(), "KUBECONFIG="+cluster.KubeconfigPath)
	if out, err := kubectl.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply -f deploy/crds: %v\n%s", err, out)
	}

	run("install", "BACKUP_REGISTRY=registry.example.com/backup")
	var hub appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "image-cloner-hub"}, &hub); err != nil {
		t.Fatal(err)
	}
	if args := hub.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--local-cluster") || !slices.Contains(args, "--leader-elect") {
		t.Errorf("hub args %v: want --local-cluster and --leader-elect", args)
	}
	run("install") // again, without BACKUP_REGISTRY: the value set before must survive
	var cm corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: v1alpha1.ConfigMapName}, &cm); err != nil {
		t.Fatal(err)
	}
	if got := cm.Data["BACKUP_REGISTRY"]; got != "registry.example.com/backup" {
		t.Errorf("after a second make install BACKUP_REGISTRY is %q, want the value set by the first", got)
	}

	// A workload as the agent leaves it, made with the agent's own functions: pointed at a
	// backup, original recorded, pull secret referenced.
	app := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "app"}}
	pullCopy := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: v1alpha1.NamespacePullSecretName, Labels: map[string]string{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue}},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)},
	}
	labels := map[string]string{"app": "web"}
	web := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "docker.io/library/nginx:1.25"}}},
			},
		},
	}
	if _, err := workload.Rewrite(web, func(string) (string, bool) { return "registry.example.com/backup/docker.io_library_nginx:1.25", true }); err != nil {
		t.Fatal(err)
	}
	if _, err := backups.AddPullSecret(web); err != nil {
		t.Fatal(err)
	}
	if len(web.Spec.Template.Spec.ImagePullSecrets) != 1 {
		t.Fatalf("the agent's AddPullSecret added %v", web.Spec.Template.Spec.ImagePullSecrets)
	}
	for _, o := range []client.Object{app, pullCopy, web} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	// The namespace controller's part: finalize image-cloner-system once it is being deleted.
	cs, err := kubernetes.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	finalized := make(chan error, 1)
	go func() {
		finalized <- testenv.WaitFor(ctx, 4*time.Minute, func(ctx context.Context) (bool, error) {
			n, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			if err != nil || n.DeletionTimestamp == nil {
				return false, err
			}
			n.Spec.Finalizers = nil
			_, err = cs.CoreV1().Namespaces().Finalize(ctx, n, metav1.UpdateOptions{})
			return err == nil, err
		})
	}()

	run("uninstall")
	if err := <-finalized; err != nil {
		t.Fatalf("namespace %s was never deleted: %v", ns, err)
	}

	if err := c.Get(ctx, client.ObjectKeyFromObject(web), web); err != nil {
		t.Fatal(err)
	}
	if got := web.Spec.Template.Spec.Containers[0].Image; got != "docker.io/library/nginx:1.25" {
		t.Errorf("after make uninstall Deployment app/web runs %s, want its original image back", got)
	}
	if _, ok := web.Annotations[workload.OriginalImagesAnnotation]; ok || len(web.Spec.Template.Spec.ImagePullSecrets) > 0 {
		t.Errorf("after make uninstall Deployment app/web keeps the agent's traces: annotations %v, imagePullSecrets %v", web.Annotations, web.Spec.Template.Spec.ImagePullSecrets)
	}
	for _, gone := range []client.Object{
		&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "image-cloner-validating"}},
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "image-cloner-mutating"}},
		&apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "clonedimages.image-cloner.io"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		pullCopy,
	} {
		if err := c.Get(ctx, client.ObjectKeyFromObject(gone), gone); !apierrors.IsNotFound(err) {
			t.Errorf("after make uninstall %T %s is still there (err %v)", gone, client.ObjectKeyFromObject(gone), err)
		}
	}
}
