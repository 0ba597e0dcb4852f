package clusters

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/cluster"

	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// CachedKinds returns an empty object of every kind a member's cache holds: WatchedKinds and
// ClonedImages.
func CachedKinds() []client.Object {
	return append(WatchedKinds(), &v1alpha1.ClonedImage{})
}

// cacheRequestTimeout bounds the requests of a member's cache (its lists); see serve.
const cacheRequestTimeout = 11 * time.Minute

// conn is one member's connection, run by its own goroutine.
type conn struct {
	reg    *Fleet
	key    string
	secret *corev1.Secret // metadata only, for Events; nil for the local cluster
	name   string
	hash   string
	config *rest.Config
	// namespace is the agent's in the member.
	namespace string

	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	status  Status
	current *Member
	started bool
}

func newConn(r *Fleet, secret *corev1.Secret, reg *registration.Registration, hash string) *conn {
	cfg := rest.CopyConfig(reg.Config)
	cfg.QPS, cfg.Burst = r.opts.QPS, r.opts.Burst
	cfg.UserAgent = "image-cloner-hub"
	// Bounds every request of the member's clients: client-go sets it as the http.Client's
	// Timeout, which covers the whole exchange, body included (the cache gets its own client,
	// see serve).
	cfg.Timeout = r.opts.RequestTimeout
	namespace := reg.Namespace
	if namespace == "" {
		namespace = v1alpha1.DefaultNamespace
	}
	c := &conn{
		reg: r, key: keyOf(secret), secret: secretRef(secret), name: reg.Cluster, hash: hash, config: cfg, namespace: namespace,
		done: make(chan struct{}),
	}
	now := time.Now()
	c.status = Status{Cluster: reg.Cluster, Secret: c.key, Convention: reg.Convention, State: Connecting, Host: cfg.Host, Since: now, Hash: hash[:min(12, len(hash))]}
	return c
}

func (c *conn) start(parent context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started {
		return
	}
	c.started = true
	ctx, cancel := context.WithCancel(parent)
	c.cancel = cancel
	go func() {
		defer close(c.done)
		c.run(ctx)
	}()
}

// stop ends the connection and waits until its goroutine has finished.
func (c *conn) stop() {
	c.mu.Lock()
	cancel, started := c.cancel, c.started
	c.started = true // a stopped conn never starts
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if started {
		<-c.done
	}
}

func (c *conn) snapshot() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

func (c *conn) member() *Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

// setState records a state and reports changes: an Event on the Secret and a log line when the
// state or the error changes.
func (c *conn) setState(s State, err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	c.mu.Lock()
	changed := c.status.State != s || c.status.LastError != msg
	if c.status.State != s {
		c.status.Since = time.Now()
	}
	c.status.State, c.status.LastError = s, msg
	st := c.status
	c.mu.Unlock()
	if !changed {
		return
	}
	log := c.reg.log.WithValues("cluster", c.name, "secret", c.key)
	switch s {
	case Invalid:
		log.Error(err, "Registration Secret cannot be used")
		c.reg.event(c.secret, corev1.EventTypeWarning, ReasonInvalidKubeconfig, msg)
	case Unreachable:
		log.Error(err, "Member cluster unreachable, retrying with backoff")
		c.reg.event(c.secret, corev1.EventTypeWarning, ReasonUnreachable, msg)
	case Connected:
		log.Info("Member cluster connected")
		c.reg.event(c.secret, corev1.EventTypeNormal, ReasonConnected, fmt.Sprintf("connected to %s", st.Host))
	default:
		log.V(1).Info("Member cluster state", "state", s)
	}
	c.reg.notifyState(st)
}

func (c *conn) setMember(m *Member) {
	c.mu.Lock()
	c.current = m
	c.mu.Unlock()
}

// run connects, serves until the member fails its probes, and tries again with backoff, until
// ctx ends.
func (c *conn) run(ctx context.Context) {
	backoff := c.reg.opts.BackoffInitial
	for ctx.Err() == nil {
		served, err := c.serve(ctx)
		if ctx.Err() != nil {
			return
		}
		if served {
			backoff = c.reg.opts.BackoffInitial
		}
		c.setState(Unreachable, err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, c.reg.opts.BackoffMax)
	}
}

// serve makes one connection: probe, check access, build and sync the cache, tell the
// listeners, then probe every ProbeInterval until FailureThreshold probes fail in a row. It
// reports whether the member was Connected at all.
func (c *conn) serve(ctx context.Context) (bool, error) {
	opts := c.reg.opts
	c.setStateKeepError(Connecting)
	httpClient, err := rest.HTTPClientFor(c.config)
	if err != nil {
		return false, fmt.Errorf("building a client from the kubeconfig: %w", err)
	}
	if err := c.probe(ctx, httpClient); err != nil {
		return false, err
	}
	// The cache's lists and watches need a client of their own: client-go applies the
	// http.Client's Timeout to a watch's whole stream, so RequestTimeout would cut every watch
	// after 10s. Like cluster-api's ClusterCache, the cache's client gets 11 minutes, which
	// bounds a list without touching watches (the reflector asks the server to end each one
	// within 5 to 10 minutes: client-go tools/cache/reflector.go, minWatchTimeout).
	cacheConfig := rest.CopyConfig(c.config)
	cacheConfig.Timeout = cacheRequestTimeout
	cacheHTTPClient, err := rest.HTTPClientFor(cacheConfig)
	if err != nil {
		return false, fmt.Errorf("building a client from the kubeconfig: %w", err)
	}
	cl, err := cluster.New(c.config, func(o *cluster.Options) {
		o.Scheme = c.reg.scheme
		o.HTTPClient = httpClient
		o.MapperProvider = newMapper
		o.Logger = c.reg.log.WithValues("cluster", c.name)
		o.Cache = cache.Options{
			HTTPClient:       cacheHTTPClient,
			DefaultTransform: cache.TransformStripManagedFields(),
			// Pods and workloads are cached as projections (ProjectPod, ProjectWorkload): the
			// hub reads only their names, owners, opt-out labels and images.
			ByObject:                    projections(),
			ReaderFailOnMissingInformer: true,
		}
		o.NewCache = func(_ *rest.Config, opts cache.Options) (cache.Cache, error) { return cache.New(cacheConfig, opts) }
		// Reads of kinds without an informer (the pull Secret) go to the API server; Secrets
		// of members are never cached.
		o.Client = client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}}
	})
	if err != nil {
		return false, fmt.Errorf("building the connection: %w", err)
	}
	if err := c.checkAccess(ctx, cl); err != nil {
		return false, err
	}
	for _, obj := range CachedKinds() {
		if _, err := cl.GetCache().GetInformer(ctx, obj); err != nil {
			return false, fmt.Errorf("watching %T: %w", obj, err)
		}
	}
	for _, l := range c.reg.listenersCopy() {
		if err := l.Prepare(cl); err != nil {
			return false, fmt.Errorf("preparing the cache: %w", err)
		}
	}

	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cacheDone := make(chan error, 1)
	go func() { cacheDone <- cl.Start(mctx) }()
	defer func() { cancel(); <-cacheDone }()

	syncCtx, syncCancel := context.WithTimeout(mctx, opts.SyncTimeout)
	synced := cl.GetCache().WaitForCacheSync(syncCtx)
	syncCancel()
	if !synced {
		return false, fmt.Errorf("the member's workloads and ClonedImages could not be listed within %s", opts.SyncTimeout)
	}

	// The member's context ends when it disconnects, with ErrDisconnected as its cause: every
	// call still in flight on its clients is cancelled then.
	hctx, hcancel := context.WithCancelCause(mctx)
	defer hcancel(ErrDisconnected)
	h := newHealth(hctx, c.name)
	m := &Member{Name: c.name, Cluster: bindCluster(cl, h), Recorder: cl.GetEventRecorder("image-cloner-hub"), Namespace: c.namespace}
	c.setMember(m)
	c.setState(Connected, nil)
	listeners := c.reg.listenersCopy()
	for _, l := range listeners {
		l.Connected(hctx, m)
	}
	defer func() {
		hcancel(ErrDisconnected)
		c.setMember(nil)
		for _, l := range listeners {
			l.Disconnected(c.name)
		}
	}()

	failures := 0
	ticker := time.NewTicker(opts.ProbeInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err := <-cacheDone:
			cacheDone <- err // for the deferred wait
			return true, fmt.Errorf("the member's cache stopped: %v", err)
		case <-ticker.C:
		case <-h.kick:
			// A request timed out: find out now whether the member answers.
		}
		err := c.probe(ctx, httpClient)
		if err == nil {
			failures = 0
			h.setStalled(nil)
			continue
		}
		failures++
		h.setStalled(err)
		c.reg.log.V(1).Info("Member probe failed", "cluster", c.name, "failures", failures, "error", err.Error())
		if failures >= opts.FailureThreshold {
			return true, fmt.Errorf("%d probes in a row failed, disconnected: %w", failures, err)
		}
	}
}

func (c *conn) setStateKeepError(s State) {
	c.mu.Lock()
	err := c.status.LastError
	c.mu.Unlock()
	var e error
	if err != "" {
		e = errors.New(err)
	}
	c.setState(s, e)
}

// probe asks the member's /readyz, which every authenticated identity may read
// (system:public-info-viewer), so a rejected credential shows as 401 here.
func (c *conn) probe(ctx context.Context, hc *http.Client) error {
	ctx, cancel := context.WithTimeout(ctx, c.reg.opts.ProbeTimeout)
	defer cancel()
	c.mu.Lock()
	c.status.LastProbe = time.Now()
	c.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.config.Host, "/")+"/readyz", nil)
	if err != nil {
		return fmt.Errorf("server address %q: %w", c.config.Host, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("probing %s: %w; %s", c.config.Host, err, advice(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode == http.StatusForbidden:
		// The credentials were accepted; some clusters do not let every identity read /readyz.
		// What the hub may do is checked by checkAccess.
		return nil
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("%s refused the kubeconfig's credentials (401): the token may have expired or been revoked; mint a new one with 'hub register'", c.config.Host)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s/readyz answered %s", c.config.Host, resp.Status)
	}
	return nil
}

// checkAccess lists one object of each cached kind straight from the API server, so that a
// missing CRD or permission is reported as such rather than as a cache that never syncs.
func (c *conn) checkAccess(ctx context.Context, cl cluster.Cluster) error {
	ctx, cancel := context.WithTimeout(ctx, c.reg.opts.ProbeTimeout)
	defer cancel()
	for _, obj := range CachedKinds() {
		gvk, err := apiutil.GVKForObject(obj, c.reg.scheme)
		if err != nil {
			return err
		}
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		err = cl.GetAPIReader().List(ctx, list, client.Limit(1))
		switch {
		case err == nil:
		case apierrors.IsForbidden(err):
			return fmt.Errorf("the kubeconfig may not list %s in the member: grant list and watch (the ClusterRole 'hub register' creates has them)", gvk.Kind)
		case apierrors.IsNotFound(err) || isNoMatch(err):
			if gvk.Group == v1alpha1.GroupVersion.Group {
				return fmt.Errorf("the member has no %s CRD: install deploy/crds (or the agent) there", gvk.Kind)
			}
			return fmt.Errorf("the member does not serve %s: %v", gvk.Kind, err)
		default:
			return fmt.Errorf("listing %s in the member: %w", gvk.Kind, err)
		}
	}
	return nil
}

// advice says what to check for a failed connection.
func advice(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknownCA):
		return "the server's certificate is not signed by the kubeconfig's certificate-authority-data: put the member's CA there"
	case errors.As(err, &hostname):
		return "the server's certificate does not name the kubeconfig's server address: use an address the certificate names, or set tls-server-name"
	case errors.As(err, &invalid):
		return "the server's certificate is not valid (expired or not yet valid?)"
	case errors.Is(err, context.DeadlineExceeded):
		return "the server did not answer in time: check the address, network and firewall between the hub and the member"
	default:
		return "check the kubeconfig's server address and the network between the hub and the member"
	}
}
