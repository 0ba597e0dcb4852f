//go:build e2e

package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/e2e"
	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
)

// TestExternal runs the specs against clusters that are already running image-cloner (kind,
// or a `make demo` left running), given by:
//
//	E2E_KUBECONFIGS=hub=PATH,member-1=PATH,...  admin kubeconfigs; "hub" is the hub cluster
//	E2E_UPSTREAM=HOST[:PORT]                      a registry the specs may push to anonymously,
//	                                              reachable by the test and the hub alike
//	E2E_KIND_HOST_ADDRESS=IP                      optional: this machine's address as the
//	                                              members' API servers reach it (kind: the
//	                                              kind network's gateway), where
//	                                              InjectedSidecar serves its webhook; unset,
//	                                              127.0.0.1 (API servers on this machine)
//
// The backup registry, its credentials and how each member is registered are read from the
// hub cluster (ConfigMap image-cloner-configuration, the push Secret, registration Secrets).
// Destructive specs (credential rotation, cluster removal) restore what they change.
func TestExternal(t *testing.T) {
	ctx := t.Context()
	in := externalFleet(t)
	runExternal(ctx, t, in)
}

// externalFleet reads the fleet TestExternal's doc comment describes (TestKindNodes reads the
// same), or skips t when E2E_KUBECONFIGS is not set.
func externalFleet(t *testing.T) e2e.FleetInput {
	spec := os.Getenv("E2E_KUBECONFIGS")
	if spec == "" {
		t.Skip("E2E_KUBECONFIGS is not set: see TestExternal's doc comment")
	}
	upstream := os.Getenv("E2E_UPSTREAM")
	if upstream == "" {
		t.Fatal("E2E_UPSTREAM is not set: a registry the specs may push to")
	}
	ctx := t.Context()
	in := e2e.FleetInput{HubNamespace: v1alpha1.DefaultNamespace, Conventions: map[string]string{},
		Upstream:    e2e.RegistryInfo{Host: upstream, Transport: http.DefaultTransport},
		HostAddress: os.Getenv("E2E_KIND_HOST_ADDRESS")}
	for _, kv := range strings.Split(spec, ",") {
		name, path, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("E2E_KUBECONFIGS: %q is not NAME=PATH", kv)
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			t.Fatalf("kubeconfig of %s: %v", name, err)
		}
		c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
		if err != nil {
			t.Fatal(err)
		}
		k := &e2e.Kube{Name: name, Config: cfg, Client: c}
		if name == "hub" {
			in.Hub = k
		} else {
			in.Members = append(in.Members, k)
		}
	}
	if in.Hub == nil || len(in.Members) == 0 {
		t.Fatal("E2E_KUBECONFIGS needs hub=PATH and at least one member")
	}
	sort.Slice(in.Members, func(i, j int) bool { return in.Members[i].Name < in.Members[j].Name })

	var cm corev1.ConfigMap
	if err := in.Hub.Client.Get(ctx, client.ObjectKey{Namespace: in.HubNamespace, Name: v1alpha1.ConfigMapName}, &cm); err != nil {
		t.Fatal(err)
	}
	in.BackupRegistry = cm.Data[config.KeyBackupRegistry]
	in.Backup.Host, _, _ = strings.Cut(in.BackupRegistry, "/")
	in.Backup.Transport = http.DefaultTransport
	var push corev1.Secret
	if err := in.Hub.Client.Get(ctx, client.ObjectKey{Namespace: in.HubNamespace, Name: config.DefaultPushSecretName}, &push); err != nil {
		t.Fatal(err)
	}
	var dc struct {
		Auths map[string]authn.AuthConfig `json:"auths"`
	}
	if err := json.Unmarshal(push.Data[corev1.DockerConfigJsonKey], &dc); err != nil {
		t.Fatalf("push Secret: %v", err)
	}
	if a, ok := dc.Auths[in.Backup.Host]; ok {
		in.Backup.Auth = authn.FromConfig(a)
	}
	var secrets corev1.SecretList
	if err := in.Hub.Client.List(ctx, &secrets, client.InNamespace(in.HubNamespace)); err != nil {
		t.Fatal(err)
	}
	for i := range secrets.Items {
		if r, err := registration.Parse(&secrets.Items[i]); err == nil {
			in.Conventions[r.Cluster] = string(r.Convention)
		}
	}
	return in
}

func runExternal(ctx context.Context, t *testing.T, in e2e.FleetInput) {
	for _, spec := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"RegistrationConventions", func(t *testing.T) { e2e.RegistrationConventionsSpec(ctx, t, in) }},
		{"FleetDedupe", func(t *testing.T) { e2e.FleetDedupeSpec(ctx, t, in) }},
		{"Patching", func(t *testing.T) { e2e.PatchingSpec(ctx, t, in) }},
		{"Admission", func(t *testing.T) { e2e.AdmissionSpec(ctx, t, in) }},
		{"MultiArch", func(t *testing.T) { e2e.MultiArchSpec(ctx, t, in) }},
		{"AnyOwnerPods", func(t *testing.T) { e2e.AnyOwnerPodsSpec(ctx, t, in) }},
		{"InjectedSidecar", func(t *testing.T) { e2e.InjectedSidecarSpec(ctx, t, in) }},
		{"CredentialRotation", func(t *testing.T) { e2e.CredentialRotationSpec(ctx, t, in) }},
		{"ClusterRemoval", func(t *testing.T) { e2e.ClusterRemovalSpec(ctx, t, in) }},
	} {
		t.Run(spec.name, spec.run)
	}
}
