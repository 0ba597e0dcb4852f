package env

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
)

// Namespace is the hub's namespace in the hub cluster and the agent's in each member.
const Namespace = v1alpha1.DefaultNamespace

// PushUsername and PullUsername are the backup registry's accounts: the hub's push Secret holds
// the first, the pull Secret members receive the second (Backup.Users has their passwords).
const (
	PushUsername = "pusher"
	PullUsername = "puller"
)

// BackupPath is the path under the backup registry's host where copies go.
const BackupPath = "backup"

// Options configure Start.
type Options struct {
	// Bin holds the hub and agent binaries (make build's ./bin); Build fills it.
	Bin string
	// Dir receives the processes' logs and the clusters' kubeconfigs (the demo's ./demo).
	Dir string
	// Members is the number of member clusters; default 2. The first is registered with
	// `hub register` (least privilege, image-cloner's Secret convention), the others by a
	// Cluster API Secret holding their admin kubeconfig, as Cluster API writes it.
	Members int
	// Progress, when set, is told what is happening (the demo prints it).
	Progress func(format string, args ...any)
	// HubReplicas is the number of hub processes; default 1. With more than one, every
	// replica runs with --leader-elect and its own metrics, probe and dashboard ports.
	HubReplicas int
	// BackupVia, when set, is called once the backup registry runs and returns the host
	// (127.0.0.1:port) the hub and agents reach it through instead, such as a fault-injecting
	// proxy's: BACKUP_REGISTRY and the credentials then name that host. Env.Backup stays the
	// registry itself.
	BackupVia func(backup *testenv.Registry) (host string, err error)
	// HubConfig holds keys added to the hub's ConfigMap image-cloner-configuration besides
	// BACKUP_REGISTRY, e.g. MAX_CONCURRENT_RECONCILES.
	HubConfig map[string]string
	// HubArgs are added to the first hub replica's arguments, e.g. --pprof-bind-address (a
	// second replica would need ports of its own). AgentArgs are added to every agent's.
	HubArgs, AgentArgs []string
}

// Env is a running fleet.
type Env struct {
	Hub      *testenv.Cluster
	Members  []*testenv.Cluster
	Upstream *testenv.Registry
	// Backup has htpasswd auth; BackupRegistry is the BACKUP_REGISTRY value (host/backup).
	Backup         *testenv.Registry
	BackupRegistry string
	// Kubeconfigs maps each cluster's name (hub, member-1, ...) to an admin kubeconfig in Dir.
	Kubeconfigs map[string]string
	// HubProcess and Agents (one per member, same order) are the running binaries;
	// HubProcesses holds every hub replica (HubProcess is the first). Restart replaces them.
	HubProcess   *Process
	HubProcesses []*Process
	Agents       []*Process
	// MetricsURL is the hub's Prometheus endpoint; DashboardURL its dashboard, empty when
	// this bin/hub has no --dashboard-bind-address.
	MetricsURL, DashboardURL string
	// Conventions says how each member was registered.
	Conventions map[string]registration.Convention

	t    testenv.T
	opts Options
}

// Build builds bin/hub and bin/agent into dir with the go command, from the repository root.
func Build(dir string) error {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	for _, b := range []string{"hub", "agent"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b), "./"+b)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./%s: %w\n%s", b, err, out)
		}
	}
	return nil
}

// MemberName is the name of the i-th member (0-based) in the hub and in Kubeconfigs.
func MemberName(i int) string { return "member-" + strconv.Itoa(i+1) }

// Start starts the fleet and returns once the hub and every agent answer /readyz; it calls t.Fatalf on
// any failure. Everything stops when t cleans up: processes first, then clusters and registries.
func Start(t testenv.T, o Options) *Env {
	t.Helper()
	if o.Members == 0 {
		o.Members = 2
	}
	if o.Progress == nil {
		o.Progress = func(string, ...any) {}
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		t.Fatalf("creating %s: %v", o.Dir, err)
	}
	e := &Env{t: t, opts: o, Kubeconfigs: map[string]string{}, Conventions: map[string]registration.Convention{}}
	ctx := context.Background()

	o.Progress("Starting 1 hub and %d member control planes and 2 registries", o.Members)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.Upstream = testenv.StartRegistry(t, testenv.RegistryOptions{Name: "upstream"})
		e.Backup = testenv.StartRegistry(t, testenv.RegistryOptions{Name: "backup", Auth: true, Username: PushUsername,
			Users: map[string]string{PullUsername: ""}})
	}()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatalf("%v", err)
	}
	webhooks := filepath.Join(root, "deploy", "webhooks", "webhooks.yaml")
	names := []string{"hub"}
	for i := range o.Members {
		names = append(names, MemberName(i))
	}
	var hub []*testenv.Cluster
	wg.Add(1)
	go func() {
		defer wg.Done()
		hub = testenv.StartClusters(t, testenv.ClusterOptions{}, names[0])
	}()
	// envtest installs the agent's webhook configurations pointed at https://127.0.0.1:<port>
	// with a CA of its own, and writes tls.crt/tls.key for that address: the agent serves them
	// in --cert-manager mode, as it would with cert-manager's Secret mounted.
	members := testenv.StartClusters(t, testenv.ClusterOptions{CRDs: true, WebhookPaths: []string{webhooks}}, names[1:]...)
	wg.Wait()
	if hub == nil || e.Upstream == nil || e.Backup == nil {
		t.Fatalf("the hub cluster or a registry did not start (see above)")
	}
	e.Hub, e.Members = hub[0], members
	backupHost := e.Backup.Host
	if o.BackupVia != nil {
		if backupHost, err = o.BackupVia(e.Backup); err != nil {
			t.Fatalf("routing the backup registry: %v", err)
		}
	}
	e.BackupRegistry = backupHost + "/" + BackupPath
	for _, c := range append([]*testenv.Cluster{e.Hub}, e.Members...) {
		p := filepath.Join(o.Dir, "kubeconfig-"+c.Name)
		if err := os.WriteFile(p, c.Kubeconfig, 0o600); err != nil {
			t.Fatalf("writing kubeconfig: %v", err)
		}
		abs, _ := filepath.Abs(p)
		e.Kubeconfigs[c.Name] = abs
	}
	o.Progress("Control planes up in %s (hub), %s (members, started together)", e.Hub.StartupTime.Round(time.Second), e.Members[0].StartupTime.Round(time.Second))

	// The hub's namespace, configuration and credentials: the push Secret holds the push
	// account, the pull Secret (what members receive) a distinct pull account, so a leak of
	// the push password is told apart from the pull credentials members are meant to hold.
	// distribution's htpasswd has no read-only users; with a real registry the pull account
	// is a pull-only robot account.
	creds := e.Backup.DockerConfigJSON()
	pullCreds, err := e.Backup.DockerConfigJSONFor(PullUsername)
	if err != nil {
		t.Fatalf("%v", err)
	}
	hubConfig := map[string]string{config.KeyBackupRegistry: e.BackupRegistry}
	for k, v := range o.HubConfig {
		hubConfig[k] = v
	}
	hubObjs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: v1alpha1.ConfigMapName},
			Data: hubConfig},
		dockerSecret(config.DefaultPushSecretName, creds),
		dockerSecret(v1alpha1.PullSecretName, pullCreds),
	}
	for _, obj := range hubObjs {
		if err := e.Hub.Client.Create(ctx, obj); err != nil {
			t.Fatalf("creating %T %s in the hub cluster: %v", obj, obj.GetName(), err)
		}
	}
	if backupHost != e.Backup.Host {
		if err := e.aliasCredentials(ctx, e.Backup.Host, backupHost); err != nil {
			t.Fatalf("%v", err)
		}
	}
	// The agent's namespace and configuration in each member (what deploy/agent applies).
	for _, m := range e.Members {
		for _, obj := range []client.Object{
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}},
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: v1alpha1.ConfigMapName},
				Data: map[string]string{config.KeyBackupRegistry: e.BackupRegistry}},
		} {
			if err := m.Client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatalf("creating %T %s in %s: %v", obj, obj.GetName(), m.Name, err)
			}
		}
	}

	// Registration: the first member least-privilege by `hub register`, the others by the
	// Cluster API convention.
	for i, m := range e.Members {
		if i == 0 {
			out, err := exec.Command(filepath.Join(o.Bin, "hub"), "register",
				"--kubeconfig", e.Kubeconfigs[m.Name], "--hub-kubeconfig", e.Kubeconfigs["hub"],
				"--name", m.Name, "--namespace", Namespace).CombinedOutput()
			if err != nil {
				t.Fatalf("hub register --name %s: %v\n%s", m.Name, err, out)
			}
			e.Conventions[m.Name] = registration.Label
			o.Progress("%s", bytes.TrimSpace(out))
			continue
		}
		if err := e.Hub.Client.Create(ctx, m.RegistrationSecret(registration.ClusterAPI, Namespace)); err != nil {
			t.Fatalf("registering %s by a Cluster API Secret: %v", m.Name, err)
		}
		e.Conventions[m.Name] = registration.ClusterAPI
		o.Progress("Registered cluster %q: Secret %s/%s-kubeconfig in the hub cluster (Cluster API convention)", m.Name, Namespace, m.Name)
	}

	e.startProcesses()
	return e
}

func (e *Env) startProcesses() {
	t, o := e.t, e.opts
	t.Helper()
	replicas := max(o.HubReplicas, 1)
	ports := freePorts(t, 3*replicas+2*len(e.Members))
	next := func() string {
		p := ports[0]
		ports = ports[1:]
		return "127.0.0.1:" + strconv.Itoa(p)
	}
	hubBin := filepath.Join(o.Bin, "hub")
	help, _ := exec.Command(hubBin, "--help").CombinedOutput()
	var started []*Process
	for i := range replicas {
		metrics, probe, dashboard := next(), next(), next()
		// The hub reads its cluster's kubeconfig from $KUBECONFIG (or in-cluster).
		args := []string{"--namespace", Namespace,
			"--metrics-bind-address", metrics, "--health-probe-bind-address", probe}
		if replicas > 1 {
			args = append(args, "--leader-elect")
		}
		if bytes.Contains(help, []byte("-dashboard-bind-address")) {
			args = append(args, "--dashboard-bind-address", dashboard)
		}
		name, logName := "hub", "hub.log"
		if i == 0 {
			args = append(args, o.HubArgs...)
		}
		if i > 0 {
			name, logName = "hub-"+strconv.Itoa(i+1), "hub-"+strconv.Itoa(i+1)+".log"
		}
		spec := processSpec{name: name, logPath: filepath.Join(o.Dir, logName), bin: hubBin, args: args,
			environ: []string{"KUBECONFIG=" + e.Kubeconfigs["hub"]}, probe: probe, metrics: metrics}
		if i == 0 {
			e.MetricsURL = "http://" + metrics + "/metrics"
			if bytes.Contains(help, []byte("-dashboard-bind-address")) {
				e.DashboardURL = "http://" + dashboard + "/"
			}
		}
		p := e.launch(spec, false)
		e.HubProcesses = append(e.HubProcesses, p)
		started = append(started, p)
		o.Progress("Started bin/hub (pid %d), log %s", p.Pid(), p.LogPath)
	}
	e.HubProcess = e.HubProcesses[0]

	for _, m := range e.Members {
		w := m.Env.WebhookInstallOptions
		metrics, agentProbe := next(), next()
		args := append([]string{
			"--kubeconfig", e.Kubeconfigs[m.Name], "--namespace", Namespace,
			"--metrics-bind-address", metrics, "--health-probe-bind-address", agentProbe,
			"--webhook-port", strconv.Itoa(w.LocalServingPort),
			"--cert-manager", "--cert-dir", w.LocalServingCertDir}, o.AgentArgs...)
		a := e.launch(processSpec{name: "agent-" + m.Name, logPath: filepath.Join(o.Dir, "agent-"+m.Name+".log"),
			bin: filepath.Join(o.Bin, "agent"), probe: agentProbe, metrics: metrics, args: args}, false)
		e.Agents = append(e.Agents, a)
		started = append(started, a)
		o.Progress("Started bin/agent for %s (pid %d), log %s", m.Name, a.Pid(), a.LogPath)
	}
	// Ready: the agents' webhooks serve and their caches have synced.
	for _, p := range started {
		if err := waitReady(context.Background(), p); err != nil {
			t.Fatalf("%v", err)
		}
	}
	o.Progress("The hub and the agents are ready")
}

// launch starts a process from spec and stops it when the test cleans up; it calls t.Fatalf
// when the process cannot start.
func (e *Env) launch(spec processSpec, appendLog bool) *Process {
	e.t.Helper()
	p, err := startProcess(spec, appendLog)
	if err != nil {
		e.t.Fatalf("%v", err)
	}
	e.t.Cleanup(func() { e.stop(p) })
	return p
}

// waitReady waits until p answers /readyz on its probe address, or fails if it exits.
func waitReady(ctx context.Context, p *Process) error {
	err := testenv.WaitFor(ctx, 2*time.Minute, func(ctx context.Context) (bool, error) {
		select {
		case <-p.Exited():
			return false, fmt.Errorf("%s exited; see %s", p.Name, p.LogPath)
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.spec.probe+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %s to be ready: %w", p.Name, err)
	}
	return nil
}

// Restart starts a new process with the same binary, arguments, ports and log file (appended
// to) as p, which must have exited (Process.Kill or Stop it first), puts it in p's place in
// HubProcess, HubProcesses or Agents, and waits until it answers /readyz.
func (e *Env) Restart(ctx context.Context, p *Process) (*Process, error) {
	select {
	case <-p.Exited():
	default:
		return nil, fmt.Errorf("restarting %s: it is still running (pid %d)", p.Name, p.Pid())
	}
	np := e.launch(p.spec, true)
	if e.HubProcess == p {
		e.HubProcess = np
	}
	for i := range e.HubProcesses {
		if e.HubProcesses[i] == p {
			e.HubProcesses[i] = np
		}
	}
	for i := range e.Agents {
		if e.Agents[i] == p {
			e.Agents[i] = np
		}
	}
	return np, waitReady(ctx, np)
}

// aliasCredentials adds, in the hub's docker config Secrets, an entry for alias with the
// credentials held for host, so that the hub authenticates to the registry through alias.
func (e *Env) aliasCredentials(ctx context.Context, host, alias string) error {
	for _, name := range []string{config.DefaultPushSecretName, v1alpha1.PullSecretName} {
		s := &corev1.Secret{}
		if err := e.Hub.Client.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: name}, s); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return fmt.Errorf("reading Secret %s: %w", name, err)
		}
		var cfg map[string]map[string]json.RawMessage
		if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
			return fmt.Errorf("parsing Secret %s: %w", name, err)
		}
		entry, ok := cfg["auths"][host]
		if !ok {
			continue
		}
		cfg["auths"][alias] = entry
		data, err := json.Marshal(cfg)
		if err != nil {
			return err
		}
		s.Data[corev1.DockerConfigJsonKey] = data
		if err := e.Hub.Client.Update(ctx, s); err != nil {
			return fmt.Errorf("updating Secret %s: %w", name, err)
		}
	}
	return nil
}

func (e *Env) stop(p *Process) {
	if err := p.Stop(); err != nil {
		select {
		case <-p.Exited():
		default:
		}
		e.t.Logf("%s: %v (log %s)", p.Name, err, p.LogPath)
	}
}

// Processes returns the hub and agent processes.
func (e *Env) Processes() []*Process {
	return append(append([]*Process{}, e.HubProcesses...), e.Agents...)
}

func dockerSecret(name string, data []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: data},
	}
}

// freePorts reserves n distinct free ports on 127.0.0.1 (all held open until every one is
// chosen, so they differ), below the kernel's ephemeral range: ports the kernel hands out
// for port 0 and for outgoing connections come from that range, so one of the many connections
// the fleet opens while the hub and agents start cannot take a port meant for them (an agent
// then exits on its bind). Another process binding that exact port can still take it.
func freePorts(t testenv.T, n int) []int {
	out, err := reservePorts(n, ephemeralLow())
	if err != nil {
		t.Fatalf("finding %d free ports: %v", n, err)
	}
	return out
}

// reservePorts returns n distinct ports below below that could be listened on, tried in a
// random order.
func reservePorts(n, below int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	const lowest = 10000
	var out []int
	for _, p := range rand.Perm(max(below-lowest, 0)) {
		if len(out) == n {
			break
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(lowest+p)))
		if err != nil {
			continue // in use
		}
		ls = append(ls, l)
		out = append(out, lowest+p)
	}
	if len(out) < n {
		return nil, fmt.Errorf("only %d free ports between %d and %d", len(out), lowest, below)
	}
	return out, nil
}

// ephemeralLow is the lowest port of the kernel's ephemeral range (Linux's default, 32768,
// when it cannot be read).
func ephemeralLow() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return 32768
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil || low <= 10000 {
		return 32768
	}
	return low
}
