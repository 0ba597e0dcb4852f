package clusters

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/cluster"

	"github.com/image-cloner/image-cloner/internal/registration"
)

// State is where a member's connection stands.
type State string

const (
	// Connecting: the hub is building the connection or waiting for its cache to sync.
	Connecting State = "Connecting"
	// Connected: the member's cache is synced and the hub reconciles its workloads.
	Connected State = "Connected"
	// Unreachable: the member did not answer, or refused the hub; it is retried with backoff.
	Unreachable State = "Unreachable"
	// Invalid: the registration Secret cannot be used; nothing happens until it changes.
	Invalid State = "Invalid"
)

// Event reasons on registration Secrets.
const (
	ReasonInvalidKubeconfig = "InvalidKubeconfig"
	ReasonUnreachable       = "Unreachable"
	ReasonConnected         = "Connected"
)

// LocalCluster is the name of the cluster the hub runs in, with --local-cluster.
const LocalCluster = "local"

// Status is what the hub knows about one registration, for the dashboard and tests.
type Status struct {
	// Cluster is the member's name; empty when the Secret is too broken to name one.
	Cluster string
	// Secret is the registration Secret, namespace/name; empty for the local cluster.
	Secret     string
	Convention registration.Convention
	State      State
	// Host is the member's API server address.
	Host string
	// LastProbe is when the member was last probed; zero before the first probe.
	LastProbe time.Time
	// LastError says what is wrong, in words a person can act on; empty when Connected.
	LastError string
	// Since is when State last changed.
	Since time.Time
	// Hash identifies the kubeconfig in use (a prefix of its SHA-256, which reveals nothing):
	// it changes when the Secret is rotated.
	Hash string
}

// Member is a connected member cluster.
type Member struct {
	Name string
	// Cluster's client reads the workload kinds and ClonedImages from the cache and everything
	// else from the API server.
	Cluster cluster.Cluster
	// Recorder records Events in the member, e.g. on a workload whose image cannot be copied.
	Recorder events.EventRecorder
	// Namespace is the agent's namespace in the member, as the registration says
	// (registration.Registration.Namespace).
	Namespace string
}

// Listener is told about members as they come and go. Its methods are called from the member's
// own goroutine and must not block for long.
type Listener interface {
	// Prepare is called with each new cluster.Cluster before its cache starts, e.g. to add field
	// indexes. An error fails this connection attempt, which is retried.
	Prepare(c cluster.Cluster) error
	// Connected is called when a member's cache has synced; ctx is cancelled when it disconnects.
	Connected(ctx context.Context, m *Member)
	// Disconnected is called when a member that was Connected is no longer.
	Disconnected(name string)
}

// Options tune connections. Zero values take the defaults.
type Options struct {
	// RequestTimeout bounds every request to a member (reads, writes, status patches,
	// discovery) except its cache's watches; default 10s, like cluster-api's ClusterCache. A
	// member whose request timed out is not sent further writes until it answers a probe.
	RequestTimeout time.Duration
	// QPS and Burst of each member's client. Default 20 and 30, like cluster-api's ClusterCache.
	QPS   float32
	Burst int
	// ProbeInterval is how often a Connected member is probed; default 10s.
	ProbeInterval time.Duration
	// ProbeTimeout bounds a probe; default 5s.
	ProbeTimeout time.Duration
	// FailureThreshold is how many probes in a row must fail to disconnect; default 5.
	FailureThreshold int
	// BackoffInitial and BackoffMax bound the wait between connection attempts; default 1s and 2m.
	BackoffInitial, BackoffMax time.Duration
	// SyncTimeout bounds the wait for a member's cache to sync; default 2m.
	SyncTimeout time.Duration
}

func (o *Options) defaults() {
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.QPS == 0 {
		o.QPS = 20
	}
	if o.Burst == 0 {
		o.Burst = 30
	}
	if o.ProbeInterval == 0 {
		o.ProbeInterval = 10 * time.Second
	}
	if o.ProbeTimeout == 0 {
		o.ProbeTimeout = 5 * time.Second
	}
	if o.FailureThreshold == 0 {
		o.FailureThreshold = 5
	}
	if o.BackoffInitial == 0 {
		o.BackoffInitial = time.Second
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = 2 * time.Minute
	}
	if o.SyncTimeout == 0 {
		o.SyncTimeout = 2 * time.Minute
	}
}

// Fleet holds the connections to every member. Make one with New, add it to the manager
// with the Reconciler (or AddLocal), and ask it for Members.
type Fleet struct {
	opts     Options
	scheme   *runtime.Scheme
	log      logr.Logger
	recorder events.EventRecorder // on registration Secrets, in the hub cluster

	mu        sync.Mutex
	ctx       context.Context  // the manager's, set by Start
	conns     map[string]*conn // by key: Secret namespace/name, or "" for the local cluster
	listeners []Listener
	onState   []func(Status)
}

// New returns a Fleet. recorder records Events on registration Secrets in the hub cluster;
// scheme must hold the workload kinds and image-cloner.io/v1alpha1.
func New(scheme *runtime.Scheme, recorder events.EventRecorder, log logr.Logger, opts Options) *Fleet {
	opts.defaults()
	return &Fleet{opts: opts, scheme: scheme, log: log, recorder: recorder, conns: map[string]*conn{}}
}

// AddListener adds l; call it before the manager starts.
func (r *Fleet) AddListener(l Listener) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.listeners = append(r.listeners, l)
}

// OnStateChange adds f, called with a member's Status whenever its State changes (e.g. for a
// metric). f must be quick.
func (r *Fleet) OnStateChange(f func(Status)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onState = append(r.onState, f)
}

// Start implements manager.Runnable: it records the context connections live in, and
// disconnects every member when it ends.
func (r *Fleet) Start(ctx context.Context) error {
	r.mu.Lock()
	r.ctx = ctx
	pending := make([]*conn, 0, len(r.conns))
	for _, c := range r.conns {
		pending = append(pending, c)
	}
	r.mu.Unlock()
	for _, c := range pending {
		c.start(ctx)
	}
	<-ctx.Done()
	r.mu.Lock()
	conns := r.conns
	r.conns = map[string]*conn{}
	r.mu.Unlock()
	for _, c := range conns {
		c.stop()
	}
	return nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: only the leader connects.
func (r *Fleet) NeedLeaderElection() bool { return true }

// AddLocal registers the cluster cfg points at (the hub's own) as member LocalCluster, whose
// agent runs in namespace (the hub's).
func (r *Fleet) AddLocal(cfg *rest.Config, namespace string) {
	_ = r.connect(nil, &registration.Registration{Cluster: LocalCluster, Config: cfg, Namespace: namespace}, "local") // the first registration: no duplicate
}

// Members returns the Connected members, sorted by name.
func (r *Fleet) Members() []*Member {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*Member
	for _, c := range r.conns {
		if m := c.member(); m != nil {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b *Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Member returns the Connected member name, or nil.
func (r *Fleet) Member(name string) *Member {
	for _, m := range r.Members() {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Snapshot returns the Status of every registration, sorted by cluster then Secret.
func (r *Fleet) Snapshot() []Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Status, 0, len(r.conns))
	for _, c := range r.conns {
		out = append(out, c.snapshot())
	}
	slices.SortFunc(out, func(a, b Status) int {
		if c := strings.Compare(a.Cluster, b.Cluster); c != 0 {
			return c
		}
		return strings.Compare(a.Secret, b.Secret)
	})
	return out
}

// connect starts (or restarts, when hash differs) the connection registered by secret (nil for
// the local cluster).
// It returns errDuplicate when another registration already uses the cluster name: the caller
// should try again later, in case that one goes away.
func (r *Fleet) connect(secret *corev1.Secret, reg *registration.Registration, hash string) error {
	key := keyOf(secret)
	r.mu.Lock()
	old := r.conns[key]
	if old != nil && old.hash == hash && old.snapshot().State != Invalid {
		r.mu.Unlock()
		return nil
	}
	for k, c := range r.conns {
		if other := c.snapshot(); k != key && c.name == reg.Cluster && other.State != Invalid {
			r.mu.Unlock()
			r.invalid(secret, reg.Cluster, reg.Convention, fmt.Errorf("cluster name %q is already registered by %s: give this registration another name", reg.Cluster, other.Secret))
			return errDuplicate
		}
	}
	c := newConn(r, secret, reg, hash)
	r.conns[key] = c
	ctx := r.ctx
	r.mu.Unlock()
	if old != nil {
		old.stop()
	}
	r.log.Info("Connecting member cluster", "cluster", reg.Cluster, "secret", key, "host", reg.Config.Host)
	if ctx != nil {
		c.start(ctx)
	}
	return nil
}

var errDuplicate = errors.New("cluster name already registered")

// invalid records a registration that cannot be used, disconnecting what it replaced.
func (r *Fleet) invalid(secret *corev1.Secret, cluster string, conv registration.Convention, err error) {
	key := keyOf(secret)
	r.mu.Lock()
	old := r.conns[key]
	if st := oldSnapshot(old); st.State == Invalid && st.LastError == err.Error() {
		// Already reported.
		r.mu.Unlock()
		return
	}
	c := &conn{reg: r, key: key, secret: secretRef(secret), name: cluster, hash: "invalid", done: make(chan struct{})}
	close(c.done)
	c.status = Status{Cluster: cluster, Secret: key, Convention: conv}
	r.conns[key] = c
	r.mu.Unlock()
	if old != nil {
		old.stop()
	}
	c.setState(Invalid, err)
}

// disconnect drops the connection of key.
func (r *Fleet) disconnect(key string) {
	r.mu.Lock()
	c := r.conns[key]
	delete(r.conns, key)
	r.mu.Unlock()
	if c != nil {
		r.log.Info("Disconnecting member cluster", "cluster", c.name, "secret", key)
		c.stop()
	}
}

func (r *Fleet) notifyState(s Status) {
	r.mu.Lock()
	fs := slices.Clone(r.onState)
	r.mu.Unlock()
	for _, f := range fs {
		f(s)
	}
}

func (r *Fleet) listenersCopy() []Listener {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.listeners)
}

// event records an Event on the registration Secret (nil for the local cluster).
func (r *Fleet) event(secret *corev1.Secret, eventtype, reason, note string) {
	if secret == nil || r.recorder == nil {
		return
	}
	r.recorder.Eventf(secret, nil, eventtype, reason, "Connect", "%s", note)
}

// secretRef keeps what an Event needs of a Secret, and nothing of its data.
func secretRef(s *corev1.Secret) *corev1.Secret {
	if s == nil {
		return nil
	}
	ref := &corev1.Secret{}
	ref.Namespace, ref.Name, ref.UID, ref.ResourceVersion = s.Namespace, s.Name, s.UID, s.ResourceVersion
	return ref
}

func oldSnapshot(c *conn) Status {
	if c == nil {
		return Status{}
	}
	return c.snapshot()
}

func keyOf(secret *corev1.Secret) string {
	if secret == nil {
		return ""
	}
	return secret.Namespace + "/" + secret.Name
}

func isNoMatch(err error) bool {
	return meta.IsNoMatchError(err)
}
