package e2e

import (
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Kube is one cluster, as the specs reach it: an admin identity.
type Kube struct {
	Name   string
	Config *rest.Config
	Client client.Client
}

// RegistryInfo is a registry the specs read from or push to.
type RegistryInfo struct {
	// Host is host[:port], as in image references.
	Host string
	// Auth is nil for an anonymous registry.
	Auth authn.Authenticator
	// Transport reaches the registry (a CA of its own, plain HTTP on loopback ...).
	Transport http.RoundTripper
	// ManifestPuts counts the manifest PUTs the registry has served for repository repo
	// (e.g. "backup/127.0.0.1_5000_e2e_app"), from its access log; nil where it cannot be
	// counted, and the specs then skip that assertion.
	ManifestPuts func(repo string) (int, error)
}

// FleetInput is what every spec takes.
type FleetInput struct {
	Hub *Kube
	// Members are the registered member clusters, each running an agent.
	Members []*Kube
	// HubNamespace is the hub's namespace, and the agent's in each member.
	HubNamespace string
	// Upstream is where specs push the images their workloads run; Backup is BACKUP_REGISTRY's
	// registry, and BackupRegistry its value (host/path).
	Upstream, Backup RegistryInfo
	BackupRegistry   string
	// Conventions says how each member (by name) was registered: "image-cloner" or "cluster-api".
	Conventions map[string]string
	// Logs are the hub's and the agents' log files by process name, DashboardURL the hub's
	// dashboard (http://host:port/) and MetricsURL its /metrics; CredentialLeakSpec scans
	// them, and skips what is empty (e.g. against kind clusters).
	Logs                     map[string]string
	DashboardURL, MetricsURL string
	// HostAddress is the IP of this machine that the members' API servers reach, where the
	// specs serve webhooks of their own (InjectedSidecarSpec's injector): empty for API servers
	// on this machine (127.0.0.1); the kind network's gateway for kind's, in containers.
	HostAddress string
	// Timeout bounds each wait; default 2 minutes.
	Timeout time.Duration
}

func (in FleetInput) timeout() time.Duration {
	if in.Timeout == 0 {
		return 2 * time.Minute
	}
	return in.Timeout
}
