package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/image-cloner/image-cloner/internal/registration"
	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// ClusterOptions configure a control plane started by StartCluster.
type ClusterOptions struct {
	// Name identifies the cluster in logs and registration Secrets; default "cluster".
	Name string
	// CRDs installs the project's CRDs from deploy/crds when true.
	CRDs bool
	// WebhookPaths are files or directories of webhook configurations to install; envtest
	// rewrites their client config to a local server (Cluster.Env.WebhookInstallOptions).
	WebhookPaths []string
}

// Cluster is a real kube-apiserver with its own etcd.
type Cluster struct {
	Name string
	// Config is an admin rest.Config (system:masters).
	Config *rest.Config
	// Kubeconfig is the same admin access as a kubeconfig file's bytes, and KubeconfigPath
	// where it is written.
	Kubeconfig     []byte
	KubeconfigPath string
	// Client is a controller-runtime client with the core and image-cloner.io types.
	Client client.Client
	// Env is the underlying envtest environment.
	Env *envtest.Environment
	// StartupTime is how long the control plane took to start (and install CRDs).
	StartupTime time.Duration

	mu      sync.Mutex
	stopped bool
}

// Scheme returns a scheme with the Kubernetes built-in types, CRDs and image-cloner.io/v1alpha1.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := apiv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// StartCluster starts a control plane and stops it when the test ends.
func StartCluster(t T, opts ClusterOptions) *Cluster {
	t.Helper()
	c, err := startCluster(t, opts)
	if err != nil {
		t.Fatalf("starting cluster %q: %v", opts.Name, err)
	}
	return c
}

// StartClusters starts one control plane per name at once; every name gets opts otherwise.
func StartClusters(t T, opts ClusterOptions, names ...string) []*Cluster {
	t.Helper()
	out := make([]*Cluster, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := opts
			o.Name = name
			out[i], errs[i] = startCluster(t, o)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("starting cluster %q: %v", names[i], err)
		}
	}
	return out
}

func startCluster(t T, opts ClusterOptions) (*Cluster, error) {
	assets, err := Assets()
	if err != nil {
		return nil, err
	}
	if opts.Name == "" {
		opts.Name = "cluster"
	}
	apiLog, _ := logFile(t, opts.Name+"-apiserver")
	etcdLog, _ := logFile(t, opts.Name+"-etcd")
	// A certificate directory of our own (not envtest's temporary one) keeps the serving
	// certificate and the client CA across StopAPIServer/StartAPIServer, so kubeconfigs
	// handed out before a restart keep working after it.
	certDir, err := os.MkdirTemp("", "image-cloner-apiserver-")
	if err != nil {
		return nil, fmt.Errorf("creating certificate directory: %w", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(certDir) })

	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		Scheme:                Scheme(),
		ControlPlane: envtest.ControlPlane{
			APIServer: &envtest.APIServer{Out: apiLog, Err: apiLog, CertDir: certDir},
			Etcd:      &envtest.Etcd{Out: etcdLog, Err: etcdLog},
		},
		// Two cores and several control planes at once: be patient.
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	if opts.CRDs {
		root, err := RepoRoot()
		if err != nil {
			return nil, err
		}
		env.CRDDirectoryPaths = []string{filepath.Join(root, "deploy", "crds")}
		env.ErrorIfCRDPathMissing = true
	}
	if len(opts.WebhookPaths) > 0 {
		env.WebhookInstallOptions.Paths = opts.WebhookPaths
	}

	start := time.Now()
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	c := &Cluster{Name: opts.Name, Config: cfg, Env: env, StartupTime: time.Since(start)}
	t.Cleanup(func() { c.Stop() })

	user, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("adding admin user: %w", err)
	}
	if c.Kubeconfig, err = user.KubeConfig(); err != nil {
		return nil, fmt.Errorf("writing admin kubeconfig: %w", err)
	}
	c.KubeconfigPath = filepath.Join(certDir, "admin.kubeconfig")
	if err := os.WriteFile(c.KubeconfigPath, c.Kubeconfig, 0o600); err != nil {
		return nil, fmt.Errorf("writing admin kubeconfig: %w", err)
	}
	if c.Client, err = client.New(cfg, client.Options{Scheme: env.Scheme}); err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	return c, nil
}

// StopAPIServer stops the kube-apiserver (etcd keeps running), as if the cluster's control
// plane went away. StartAPIServer brings it back on the same address with the same certificates.
func (c *Cluster) StopAPIServer() error {
	return c.Env.ControlPlane.APIServer.Stop()
}

// StartAPIServer restarts a kube-apiserver stopped by StopAPIServer and waits until it is healthy.
func (c *Cluster) StartAPIServer() error {
	return c.Env.ControlPlane.APIServer.Start()
}

// Stop stops the control plane; it is safe to call more than once.
func (c *Cluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopped = true
	_ = c.Env.Stop()
}

// WaitFor polls cond every 100ms until it returns true or an error, or the timeout passes.
// It is the harness's one way to wait: tests create and wait, they do not sleep.
func WaitFor(ctx context.Context, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var lastErr error
	for {
		ok, err := cond(ctx)
		if err == nil && ok {
			return nil
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("condition not met within %s: %w", timeout, lastErr)
			}
			return fmt.Errorf("condition not met within %s", timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// RegistrationSecret returns the Secret that registers this cluster with a hub running in
// namespace, in the given convention, holding the admin kubeconfig. Tests that need least
// privilege mint a narrower kubeconfig with `hub register` instead.
func (c *Cluster) RegistrationSecret(conv registration.Convention, namespace string) *corev1.Secret {
	return registration.NewSecret(conv, namespace, c.Name, c.Kubeconfig)
}
