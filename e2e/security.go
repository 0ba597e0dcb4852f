package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
)

// dashboardPaths are the dashboard's pages and JSON API, all read by CredentialLeakSpec.
var dashboardPaths = []string{"", "clusters", "images", "logs", "api/v1/overview", "api/v1/clusters", "api/v1/images", "api/v1/logs"}

// CredentialLeakSpec: credentials stay where they belong. It reads the credentials from the
// hub cluster (the push Secret, the pull Secret, every member's registration kubeconfig) and
// asserts, in any encoding the Scanner knows:
//   - no Secret, ConfigMap, Event or ClonedImage of any member holds the push password (the
//     pull password, which members are meant to hold, is found in the agent's pull Secret: the
//     scanner's positive control on real data);
//   - no Event or ClonedImage of any member, and no Event of the hub cluster, holds any of them;
//   - no process log (in.Logs), dashboard page, dashboard API answer or /metrics holds any of
//     them: push and pull passwords, members' bearer tokens and client keys.
//
// Run it last, after the specs that make the processes log and the dashboard show the most.
func CredentialLeakSpec(ctx context.Context, t *testing.T, in FleetInput) {
	g := gomega.NewWithT(t)
	push := secretCredentials(ctx, t, in, config.DefaultPushSecretName, "push")
	pull := secretCredentials(ctx, t, in, v1alpha1.PullSecretName, "pull")
	g.Expect(push).NotTo(gomega.BeEmpty(), "the push Secret holds no credential: nothing to look for")

	var kube []Credential
	var hubSecrets corev1.SecretList
	g.Expect(in.Hub.Client.List(ctx, &hubSecrets, client.InNamespace(in.HubNamespace))).To(gomega.Succeed())
	for i := range hubSecrets.Items {
		s := &hubSecrets.Items[i]
		if _, ok := registration.Matches(s); !ok {
			continue
		}
		reg, err := registration.Parse(s)
		g.Expect(err).NotTo(gomega.HaveOccurred())
		creds, err := RESTConfigCredentials("kubeconfig of "+reg.Cluster, reg.Config)
		g.Expect(err).NotTo(gomega.HaveOccurred())
		kube = append(kube, creds...)
	}
	g.Expect(kube).NotTo(gomega.BeEmpty(), "no member kubeconfig holds a token or a client key: nothing to look for")

	pushOnly, err := NewScanner(push...)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	all, err := NewScanner(append(append(append([]Credential{}, push...), pull...), kube...)...)
	g.Expect(err).NotTo(gomega.HaveOccurred())

	var leaks []Leak
	scanned := map[string]int{}
	scanObjects := func(k *Kube, list client.ObjectList, s *Scanner, what string) {
		g.Expect(k.Client.List(ctx, list)).To(gomega.Succeed(), "listing %s in %s", what, k.Name)
		items, err := metaItems(list)
		g.Expect(err).NotTo(gomega.HaveOccurred())
		for _, obj := range items {
			where := fmt.Sprintf("%s %s %s/%s", k.Name, what, obj.GetNamespace(), obj.GetName())
			data, err := json.Marshal(obj)
			g.Expect(err).NotTo(gomega.HaveOccurred())
			leaks = append(leaks, s.Scan(where, data)...)
			if sec, ok := obj.(*corev1.Secret); ok {
				for key, v := range sec.Data {
					leaks = append(leaks, s.Scan(where+" key "+key, v)...)
				}
			}
			scanned[what]++
		}
	}
	pullFound := 0
	for _, m := range in.Members {
		var secrets corev1.SecretList
		scanObjects(m, &secrets, pushOnly, "Secret")
		scanObjects(m, &corev1.ConfigMapList{}, pushOnly, "ConfigMap")
		scanObjects(m, &corev1.EventList{}, all, "Event")
		scanObjects(m, &v1alpha1.ClonedImageList{}, all, "ClonedImage")
		if len(pull) > 0 {
			pullScanner, err := NewScanner(pull...)
			g.Expect(err).NotTo(gomega.HaveOccurred())
			for i := range secrets.Items {
				s := &secrets.Items[i]
				if s.Namespace == in.HubNamespace && s.Name == v1alpha1.PullSecretName {
					if len(pullScanner.Scan(s.Name, s.Data[corev1.DockerConfigJsonKey])) > 0 {
						pullFound++
					}
				}
			}
		}
	}
	if len(pull) > 0 {
		g.Expect(pullFound).To(gomega.Equal(len(in.Members)),
			"positive control: every member's %s/%s holds the pull password", in.HubNamespace, v1alpha1.PullSecretName)
	}
	var hubEvents corev1.EventList
	g.Expect(in.Hub.Client.List(ctx, &hubEvents)).To(gomega.Succeed())
	for i := range hubEvents.Items {
		e := &hubEvents.Items[i]
		data, _ := json.Marshal(e)
		leaks = append(leaks, all.Scan(fmt.Sprintf("hub Event %s/%s", e.Namespace, e.Name), data)...)
	}

	logBytes := 0
	for name, path := range in.Logs {
		data, err := os.ReadFile(path)
		g.Expect(err).NotTo(gomega.HaveOccurred(), "reading the log of %s", name)
		g.Expect(data).NotTo(gomega.BeEmpty(), "the log of %s is empty: nothing was scanned", name)
		logBytes += len(data)
		leaks = append(leaks, all.Scan("log of "+name, data)...)
	}
	var urls []string
	if in.DashboardURL != "" {
		base := strings.TrimSuffix(in.DashboardURL, "/") + "/"
		for _, p := range dashboardPaths {
			urls = append(urls, base+p)
		}
	}
	if in.MetricsURL != "" {
		urls = append(urls, in.MetricsURL)
	}
	pageBytes := 0
	for _, u := range urls {
		data := get(ctx, g, u)
		pageBytes += len(data)
		leaks = append(leaks, all.Scan(u, data)...)
	}

	t.Logf("Scanned for %d credentials: %v objects in the members, %d bytes of %d logs, %d bytes of %d pages",
		len(push)+len(pull)+len(kube), scanned, logBytes, len(in.Logs), pageBytes, len(urls))
	g.Expect(leaks).To(gomega.BeEmpty(), "credentials leaked")
}

// secretCredentials reads the dockerconfigjson Secret name in the hub's namespace; a missing
// Secret holds none.
func secretCredentials(ctx context.Context, t testing.TB, in FleetInput, name, label string) []Credential {
	t.Helper()
	g := gomega.NewWithT(t)
	var s corev1.Secret
	if err := in.Hub.Client.Get(ctx, client.ObjectKey{Namespace: in.HubNamespace, Name: name}, &s); err != nil {
		g.Expect(client.IgnoreNotFound(err)).To(gomega.Succeed())
		return nil
	}
	creds, err := DockerConfigCredentials(label+" Secret", s.Data[corev1.DockerConfigJsonKey])
	g.Expect(err).NotTo(gomega.HaveOccurred())
	var out []Credential
	for _, c := range creds {
		if len(c.Value) < minCredentialLen {
			// Another spec's placeholder (e.g. a marker registry's "p"): it would match by chance.
			t.Logf("Not scanning for %s: %d characters are too few", c.Name, len(c.Value))
			continue
		}
		out = append(out, c)
	}
	return out
}

func metaItems(list client.ObjectList) ([]client.Object, error) {
	objs, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	out := make([]client.Object, 0, len(objs))
	for _, o := range objs {
		co, ok := o.(client.Object)
		if !ok {
			return nil, fmt.Errorf("%T is not a client.Object", o)
		}
		out = append(out, co)
	}
	return out, nil
}

// get reads url and fails unless it answers 200 with a body.
func get(ctx context.Context, g gomega.Gomega, url string) []byte {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	resp, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(gomega.HaveOccurred(), "GET %s", url)
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(gomega.HaveOccurred())
	g.Expect(resp.StatusCode).To(gomega.Equal(http.StatusOK), "GET %s", url)
	g.Expect(data).NotTo(gomega.BeEmpty(), "GET %s", url)
	return data
}
