// Command hub watches the member clusters registered by kubeconfig Secrets, copies the public
// images their workloads run into the backup registry once for the whole fleet, and records
// the result as ClonedImages in each member.
//
//	hub [flags]                      run the hub (in the hub cluster)
//	hub register --kubeconfig FILE --name N [--context C] [--hub-kubeconfig F] [--namespace NS]
//	                                 give the hub least-privilege access to a member
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2/textlogger"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/image-cloner/image-cloner/hub/internal/app"
	"github.com/image-cloner/image-cloner/hub/internal/images"
	"github.com/image-cloner/image-cloner/internal/enroll"
	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
	"github.com/image-cloner/image-cloner/pkg/config"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "register" {
		if err := runRegister(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "hub register:", err)
			os.Exit(1)
		}
		return
	}
	if err := runHub(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "hub:", err)
		os.Exit(1)
	}
}

func runHub(args []string) error {
	fs := flag.NewFlagSet("hub", flag.ExitOnError)
	var o app.Options
	var qps float64
	var blockRate, mutexFraction int
	fs.StringVar(&o.Namespace, "namespace", v1alpha1.DefaultNamespace, "the hub's namespace: registration Secrets, ConfigMap image-cloner-configuration, credentials")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint, 0 to disable")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "address of /healthz and /readyz, 0 to disable")
	fs.StringVar(&o.PprofBindAddress, "pprof-bind-address", "0", "address of Go's /debug/pprof/ profiles (heap, goroutine, cpu), e.g. 127.0.0.1:6060; 0 disables it")
	fs.IntVar(&blockRate, "pprof-block-profile-rate", 0, "with --pprof-bind-address: record one blocking event per this many nanoseconds blocked in /debug/pprof/block (runtime.SetBlockProfileRate; 1 records every one); 0 records none")
	fs.IntVar(&mutexFraction, "pprof-mutex-profile-fraction", 0, "with --pprof-bind-address: record one in this many mutex contention events in /debug/pprof/mutex (runtime.SetMutexProfileFraction); 0 records none")
	fs.StringVar(&o.DashboardBindAddress, "dashboard-bind-address", "127.0.0.1:8090", "address of the read-only web dashboard and its JSON API (/api/v1/...), 0 to disable; loopback by default: in a cluster set :8090 and reach it through a Service or kubectl port-forward")
	fs.BoolVar(&o.LeaderElection, "leader-elect", false, "elect a leader among hub replicas (Lease image-cloner-hub in --namespace)")
	fs.BoolVar(&o.LocalCluster, "local-cluster", false, "also treat the hub's own cluster as member \"local\" (single-cluster setup)")
	fs.StringVar(&o.RegistryCAFile, "registry-ca-file", "", "PEM bundle of certificate authorities to trust for registry connections (upstream and backup) besides the system's, for registries with a private CA")
	fs.StringVar(&o.PushSecret, "push-secret", config.DefaultPushSecretName, "kubernetes.io/dockerconfigjson Secret in --namespace with the backup registry's push credentials")
	fs.Float64Var(&qps, "kube-qps", 20, "queries per second of each member cluster's client")
	fs.IntVar(&o.Clusters.Burst, "kube-burst", 30, "burst of each member cluster's client")
	fs.IntVar(&o.ImageWorkers, "image-workers", images.DefaultWorkers, "images reconciled at once across the fleet; each waits on registry HEADs, a copy slot (MAX_CONCURRENT_RECONCILES bounds copies) and status writes, so this is well above MAX_CONCURRENT_RECONCILES")
	fs.DurationVar(&o.Clusters.ProbeInterval, "probe-interval", 10*time.Second, "how often each member's API server is probed")
	fs.IntVar(&o.Clusters.FailureThreshold, "probe-failure-threshold", 5, "failed probes in a row that disconnect a member")
	logCfg := textlogger.NewConfig()
	logCfg.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.Clusters.QPS = float32(qps)
	// Both cost time on every blocking event or contended lock: off unless asked for.
	if blockRate > 0 {
		runtime.SetBlockProfileRate(blockRate)
	}
	if mutexFraction > 0 {
		runtime.SetMutexProfileFraction(mutexFraction)
	}
	ctrl.SetLogger(textlogger.NewLogger(logCfg))
	o.Log = ctrl.Log.WithName("hub")
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	return app.Run(ctrl.SetupSignalHandler(), cfg, o)
}

func runRegister(args []string) error {
	fs := flag.NewFlagSet("hub register", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "the member's kubeconfig (an identity that may create RBAC objects there); required")
	kctx := fs.String("context", "", "context of --kubeconfig; default its current context")
	name := fs.String("name", "", "the member's name in the hub; required")
	hubKubeconfig := fs.String("hub-kubeconfig", "", "kubeconfig of the hub cluster; default $KUBECONFIG or in-cluster")
	ns := fs.String("namespace", v1alpha1.DefaultNamespace, "the hub's namespace, and the agent's in the member")
	server := fs.String("server", "", "API server address the hub uses to reach the member; default the one in --kubeconfig")
	expiration := fs.Duration("token-expiration", enroll.DefaultTokenExpiration, "lifetime of the minted token (the member's API server may cap it)")
	capi := fs.Bool("cluster-api", false, "write the Secret in Cluster API's <name>-kubeconfig convention")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kubeconfig == "" || *name == "" {
		fs.Usage()
		return fmt.Errorf("--kubeconfig and --name are required")
	}
	member, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: *kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: *kctx}).ClientConfig()
	if err != nil {
		return fmt.Errorf("reading --kubeconfig: %w", err)
	}
	hubCfg, err := hubConfig(*hubKubeconfig)
	if err != nil {
		return fmt.Errorf("reading the hub's kubeconfig: %w", err)
	}
	hub, err := client.New(hubCfg, client.Options{Scheme: app.Scheme()})
	if err != nil {
		return err
	}
	conv := registration.Label
	if *capi {
		conv = registration.ClusterAPI
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := enroll.Register(ctx, enroll.Options{
		Member: member, Name: *name, Namespace: *ns, Server: *server, TokenExpiration: *expiration,
		Hub: hub, HubNamespace: *ns, Convention: conv,
	})
	if err != nil {
		return err
	}
	fmt.Printf("Registered cluster %q: Secret %s/%s in the hub cluster (ServiceAccount %s/%s in the member)\n", *name, s.Namespace, s.Name, *ns, enroll.ServiceAccountName)
	return nil
}

func hubConfig(path string) (*rest.Config, error) {
	if path == "" {
		return ctrl.GetConfig()
	}
	return clientcmd.BuildConfigFromFlags("", path)
}
