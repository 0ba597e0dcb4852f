package images_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/imageref"
	"github.com/image-cloner/image-cloner/pkg/mirror"
	"github.com/image-cloner/image-cloner/pkg/workload"
)

// script makes every Copy of images succeed.
func script(images ...string) {
	for _, image := range images {
		suite.copier.set(image, step{res: mirror.Result{Digest: digestOf(image)}})
	}
}

// newNamespace creates a namespace of the test's own and returns its name.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-"}}
	NewWithT(t).Expect(suite.cluster.Client.Create(t.Context(), ns)).To(Succeed())
	return ns.Name
}

// ensureNamespace creates namespace name unless it exists (kube-system, the suite's ignored one).
func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	err := suite.cluster.Client.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	NewWithT(t).Expect(client.IgnoreAlreadyExists(err)).To(Succeed())
}

// createPod creates a Pod in ns whose containers c0, c1, ... run images, changed by mutate
// (if not nil) before it is created. There is no kubelet: the Pod stays Pending, which is all
// the hub needs.
func createPod(t *testing.T, ns string, mutate func(*corev1.Pod), images ...string) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "pod-"}}
	for i, image := range images {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: image})
	}
	if mutate != nil {
		mutate(p)
	}
	NewWithT(t).Expect(suite.cluster.Client.Create(t.Context(), p)).To(Succeed())
	return p
}

// ownedBy makes a Pod's controller the object kind/name of apiVersion.
func ownedBy(apiVersion, kind, name string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.OwnerReferences = append(p.OwnerReferences, metav1.OwnerReference{
			APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID(rand.String(12)), Controller: ptrTo(true),
		})
	}
}

// ofDeployment makes a Pod one of Deployment name's, as the Deployment controller names its
// ReplicaSet and labels its Pods.
func ofDeployment(name string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		hash := rand.String(8)
		ownedBy("apps/v1", "ReplicaSet", name+"-"+hash)(p)
		p.Labels = map[string]string{appsv1.DefaultDeploymentUniqueLabelKey: hash}
	}
}

// slug makes a test case's name a repository name.
func slug(name string) string {
	return strings.ToLower(strings.NewReplacer(" ", "-", "_", "-").Replace(name))
}

func ptrTo[T any](v T) *T { return &v }

func isReady(ci *v1alpha1.ClonedImage) bool { return ci.IsReady() }

// expectNotBackedUp checks that image has no ClonedImage and was never copied.
func expectNotBackedUp(t *testing.T, image string) {
	t.Helper()
	g := NewWithT(t)
	ref, err := imageref.Parse(image)
	g.Expect(err).NotTo(HaveOccurred())
	err = suite.cluster.Client.Get(t.Context(), client.ObjectKey{Name: imageref.ObjectName(ref)}, &v1alpha1.ClonedImage{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%s got a ClonedImage: %v", image, err)
	g.Expect(suite.copier.callsFor(image)).To(BeZero(), "%s was copied", image)
}

// Images that run only in Pods, in any container list and whatever owns the Pod, get a
// ClonedImage and are copied like a workload's.
func TestPods_imagesOnlyPodsRunAreBackedUp(t *testing.T) {
	for _, tc := range []struct {
		name string
		// run makes image run in namespace ns, in a Pod only.
		run func(t *testing.T, ns, image string)
	}{
		{"bare Pod", func(t *testing.T, ns, image string) { createPod(t, ns, nil, image) }},
		{"Pod owned by a custom resource", func(t *testing.T, ns, image string) {
			// No CRD is needed: the API server does not check the owner's kind.
			createPod(t, ns, ownedBy("widgets.example.com/v1alpha1", "Widget", "w"), image)
		}},
		{"sidecar injected into a Pod of a Deployment", func(t *testing.T, ns, image string) {
			app := "registry.example/pods/app:1"
			script(app)
			d := &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
				Spec: appsv1.DeploymentSpec{
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
						Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: app}}},
					},
				},
			}
			NewWithT(t).Expect(suite.cluster.Client.Create(t.Context(), d)).To(Succeed())
			// What a mesh's webhook makes of the template: one more container.
			createPod(t, ns, ofDeployment("web"), app, image)
		}},
		{"init container", func(t *testing.T, ns, image string) {
			createPod(t, ns, func(p *corev1.Pod) {
				p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: image}}
			}, "registry.example/pods/main:1")
		}},
		{"ephemeral container", func(t *testing.T, ns, image string) {
			// kubectl debug adds one through the ephemeralcontainers subresource.
			p := createPod(t, ns, nil, "registry.example/pods/debugged:1")
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "debug", Image: image, TerminationMessagePolicy: corev1.TerminationMessageReadFile, ImagePullPolicy: corev1.PullIfNotPresent}}}
			NewWithT(t).Expect(suite.cluster.Client.SubResource("ephemeralcontainers").Update(t.Context(), p)).To(Succeed())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			image := "registry.example/pods/" + slug(tc.name) + ":1"
			script(image, "registry.example/pods/main:1", "registry.example/pods/debugged:1")
			tc.run(t, newNamespace(t), image)
			ci := waitFor(t, image, "Ready", isReady)
			NewWithT(t).Expect(ci.Status.Digest).To(Equal(digestOf(image).String()))
			NewWithT(t).Expect(suite.copier.callsFor(image)).To(BeNumerically(">=", 1))
		})
	}
}

// The filters a workload's images go through apply to a Pod's: an ignored namespace, the
// opt-out label on the Pod or on the workload that owns it, IMAGES_TO_IGNORE. Each case then
// lifts its filter (the control): the same image is backed up, so the check can fail.
func TestPods_filtersApplyToPods(t *testing.T) {
	for _, tc := range []struct {
		name string
		// run makes image run in a Pod its filter leaves alone.
		run func(t *testing.T, image string)
		// lift makes image count; nil when the filter is the configuration's (IMAGES_TO_IGNORE).
		lift func(t *testing.T, image string)
	}{
		{name: "namespace in NAMESPACES_TO_IGNORE",
			run: func(t *testing.T, image string) {
				ensureNamespace(t, ignoredNamespace)
				createPod(t, ignoredNamespace, nil, image)
			},
			lift: func(t *testing.T, image string) { createPod(t, newNamespace(t), nil, image) },
		},
		{name: "kube-system",
			run: func(t *testing.T, image string) {
				ensureNamespace(t, "kube-system")
				createPod(t, "kube-system", nil, image)
			},
			lift: func(t *testing.T, image string) { createPod(t, newNamespace(t), nil, image) },
		},
		{name: "opted-out Pod",
			run: func(t *testing.T, image string) {
				createPod(t, newNamespace(t), func(p *corev1.Pod) {
					p.Name = "opted-out"
					p.Labels = map[string]string{v1alpha1.IgnoreLabel: v1alpha1.IgnoreValue}
				}, image)
			},
			lift: func(t *testing.T, image string) {
				pods := &corev1.PodList{}
				g := NewWithT(t)
				g.Expect(suite.cluster.Client.List(t.Context(), pods, client.MatchingLabels{v1alpha1.IgnoreLabel: v1alpha1.IgnoreValue})).To(Succeed())
				for i := range pods.Items {
					if p := &pods.Items[i]; p.Spec.Containers[0].Image == image {
						patch := client.MergeFrom(p.DeepCopy())
						delete(p.Labels, v1alpha1.IgnoreLabel)
						g.Expect(suite.cluster.Client.Patch(t.Context(), p, patch)).To(Succeed())
					}
				}
			},
		},
		{name: "Pod of an opted-out Deployment",
			run: func(t *testing.T, image string) {
				useImages(t, map[string]string{v1alpha1.IgnoreLabel: v1alpha1.IgnoreValue}, image)
				d := optedOutDeployment(t, image)
				createPod(t, d.Namespace, ofDeployment(d.Name), image)
			},
			lift: func(t *testing.T, image string) { optIn(t, optedOutDeployment(t, image)) },
		},
		{name: "sidecar in a Pod of an opted-out Deployment",
			// The image is only in the Pod: lifting the Deployment's label must bring the
			// Pod's images back, not only the Deployment's.
			run: func(t *testing.T, image string) {
				app := sidecarApp(image)
				script(app)
				useImages(t, map[string]string{v1alpha1.IgnoreLabel: v1alpha1.IgnoreValue}, app)
				d := optedOutDeployment(t, app)
				createPod(t, d.Namespace, ofDeployment(d.Name), app, image)
			},
			lift: func(t *testing.T, image string) { optIn(t, optedOutDeployment(t, sidecarApp(image))) },
		},
		{name: "sidecar in a Pod of a Job of an opted-out CronJob",
			run: func(t *testing.T, image string) {
				app := sidecarApp(image)
				script(app)
				ns := newNamespace(t)
				cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly", Labels: map[string]string{v1alpha1.IgnoreLabel: v1alpha1.IgnoreValue}},
					Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
						Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c0", Image: app}}}}}}}}
				NewWithT(t).Expect(suite.cluster.Client.Create(t.Context(), cj)).To(Succeed())
				job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly-29000000"}, Spec: cj.Spec.JobTemplate.Spec}
				job.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: cj.Name, UID: cj.UID, Controller: ptrTo(true)}}
				NewWithT(t).Expect(suite.cluster.Client.Create(t.Context(), job)).To(Succeed())
				createPod(t, ns, ownedBy("batch/v1", "Job", job.Name), app, image)
			},
			lift: func(t *testing.T, image string) {
				list := &batchv1.CronJobList{}
				g := NewWithT(t)
				g.Expect(suite.cluster.Client.List(t.Context(), list, client.MatchingLabels{v1alpha1.IgnoreLabel: v1alpha1.IgnoreValue})).To(Succeed())
				for i := range list.Items {
					if cj := &list.Items[i]; workload.Images(cj)[0] == sidecarApp(image) {
						optIn(t, cj)
						return
					}
				}
				t.Fatalf("no opted-out CronJob runs %s", sidecarApp(image))
			},
		},
		{name: "IMAGES_TO_IGNORE",
			run: func(t *testing.T, image string) {
				createPod(t, newNamespace(t), nil, "registry.example/ignored/pod:1")
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			image := "registry.example/pod-filters/" + slug(tc.name) + ":1"
			if tc.lift == nil {
				image = "registry.example/ignored/pod:1"
			}
			// A witness created after the filtered Pod: once it is Ready, the filtered Pod's
			// events have been handled.
			witness := "registry.example/witness/" + slug(tc.name) + ":1"
			script(image, witness)
			tc.run(t, image)
			createPod(t, newNamespace(t), nil, witness)
			waitFor(t, witness, "Ready", isReady)
			expectNotBackedUp(t, image)
			if tc.lift == nil {
				return
			}
			tc.lift(t, image)
			waitFor(t, image, "Ready once its filter is lifted", isReady)
		})
	}
}

// optIn removes the opt-out label from obj, as read from the API server.
func optIn(t *testing.T, obj client.Object) {
	t.Helper()
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
	labels := obj.GetLabels()
	delete(labels, v1alpha1.IgnoreLabel)
	obj.SetLabels(labels)
	NewWithT(t).Expect(suite.cluster.Client.Patch(t.Context(), obj, patch)).To(Succeed())
}

// sidecarApp is the image of the workload whose Pods run the sidecar image.
func sidecarApp(image string) string { return strings.TrimSuffix(image, ":1") + "-app:1" }

// optedOutDeployment finds the Deployment useImages made for image.
func optedOutDeployment(t *testing.T, image string) *appsv1.Deployment {
	t.Helper()
	list := &appsv1.DeploymentList{}
	NewWithT(t).Expect(suite.cluster.Client.List(t.Context(), list)).To(Succeed())
	for i := range list.Items {
		if workload.Images(&list.Items[i])[0] == image {
			return &list.Items[i]
		}
	}
	t.Fatalf("no Deployment runs %s", image)
	return nil
}

// A member's cache holds a projection of each Pod, not the Pod: what the hub reads of a cached
// Pod is exactly clusters.ProjectPod of what the API server has, managed fields, volumes,
// environment and every other label gone.
func TestPods_memberCacheHoldsOnlyAProjection(t *testing.T) {
	g := NewWithT(t)
	image := "registry.example/projection/app:1"
	original := "registry.example/projection/original:1"
	script(image, "registry.example/projection/init:1", original)
	ns := newNamespace(t)
	p := createPod(t, ns, func(p *corev1.Pod) {
		ofDeployment("web")(p)
		p.Labels["app"] = "web"
		p.Labels[v1alpha1.IgnoreLabel] = "false"
		p.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 1000),
			workload.OriginalImagesAnnotation: `{"containers/c0":"` + original + `"}`}
		p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "registry.example/projection/init:1", Command: []string{"sh", "-c", "true"}}}
		c := &p.Spec.Containers[0]
		c.Env = []corev1.EnvVar{{Name: "A", Value: "b"}}
		c.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}
		c.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		p.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}}
	}, image)
	// What a kubelet would report.
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "init", Image: "registry.example/projection/init:1", ImageID: "registry.example/projection/init@sha256:" + strings.Repeat("1", 64),
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}}}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c0", Image: image, ImageID: "registry.example/projection/app@sha256:" + strings.Repeat("2", 64),
		Ready: true, RestartCount: 3, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}}
	g.Expect(suite.cluster.Client.Status().Update(t.Context(), p)).To(Succeed())
	server := &corev1.Pod{}
	g.Expect(suite.cluster.Client.Get(t.Context(), client.ObjectKeyFromObject(p), server)).To(Succeed())
	g.Expect(server.ManagedFields).NotTo(BeEmpty(), "the API server keeps managed fields: the cache must drop them")

	cached, ok := readCached(t, server).(*clusters.Pod)
	g.Expect(ok).To(BeTrue(), "the member cache holds a %T", cached)

	projected, err := clusters.ProjectPod(server.DeepCopy())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cached).To(Equal(projected))
	g.Expect(cached.GroupVersionKind()).To(Equal(corev1.SchemeGroupVersion.WithKind("Pod")))
	g.Expect(cached.GetManagedFields()).To(BeEmpty())
	g.Expect(cached.Labels).To(Equal(map[string]string{v1alpha1.IgnoreLabel: "false"}))
	g.Expect(cached.TemplateHash()).To(Equal(p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]))
	g.Expect(cached.GetAnnotations()).To(BeEmpty())
	g.Expect(cached.Originals()).To(Equal([]string{original}))
	g.Expect(cached.Statuses).To(Equal([]clusters.ContainerStatus{
		clusters.NewContainerStatus("init", "registry.example/projection/init:1", server.Status.InitContainerStatuses[0].ImageID, false),
		clusters.NewContainerStatus("c0", image, server.Status.ContainerStatuses[0].ImageID, true),
	}))

	// The original the annotation records counts as used, as a rewritten workload's does.
	waitFor(t, original, "Ready for the Pod's recorded original", isReady)
}

// A member's cache holds a projection of each workload too: what the hub reads of a cached
// Deployment is exactly clusters.ProjectWorkload of what the API server has.
func TestWorkloads_memberCacheHoldsOnlyAProjection(t *testing.T) {
	g := NewWithT(t)
	image := "registry.example/projection/deployment:1"
	script(image)
	useImages(t, map[string]string{"team": "a", v1alpha1.IgnoreLabel: "false"}, image)
	server := optedOutDeployment(t, image) // the Deployment useImages made, read from the API server
	g.Expect(server.ManagedFields).NotTo(BeEmpty(), "the API server keeps managed fields: the cache must drop them")
	g.Expect(server.Spec.Selector).NotTo(BeNil())

	cached, ok := readCached(t, server).(*clusters.Workload)
	g.Expect(ok).To(BeTrue(), "the member cache holds a %T", cached)
	projected, err := clusters.ProjectWorkload(server.DeepCopy())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cached).To(Equal(projected))
	g.Expect(cached.GroupVersionKind()).To(Equal(appsv1.SchemeGroupVersion.WithKind("Deployment")))
	g.Expect(cached.Containers).To(Equal([]clusters.Container{clusters.NewContainer("c0", image)}))
	g.Expect(cached.Labels).To(Equal(map[string]string{v1alpha1.IgnoreLabel: "false"}))
	waitFor(t, image, "Ready from the projected Deployment", isReady)
}

// readCached returns server's object as the member's cache holds it, once the cache has
// server's resourceVersion.
func readCached(t *testing.T, server client.Object) client.Object {
	t.Helper()
	var cached client.Object
	err := testenv.WaitFor(t.Context(), wait, func(ctx context.Context) (bool, error) {
		members := suite.fleet.Members()
		if len(members) != 1 {
			return false, nil // not connected yet
		}
		obj, err := members[0].CachedGet(ctx, server, server.GetNamespace(), server.GetName())
		if err != nil || obj == nil {
			return false, err
		}
		cached = obj.DeepCopyObject().(client.Object)
		return cached.GetResourceVersion() == server.GetResourceVersion(), nil
	})
	NewWithT(t).Expect(err).NotTo(HaveOccurred(), "the member cache never had %s at resourceVersion %s", server.GetName(), server.GetResourceVersion())
	return cached
}
