// Command agent runs in each member cluster: it points workloads at the backups the hub has
// made, keeps pull credentials in each namespace and serves the admission webhooks.
//
//	agent [flags]            run the agent (see -help)
//	agent restore [flags]    uninstall path: delete the webhook configurations and put every
//	                         workload's original images back (stop the agent first)
//
// See agent/README.md for modes, certificates and uninstalling.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/image-cloner/image-cloner/agent/internal/app"
	apiv1 "github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "restore" {
		return restore(args[1:])
	}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	var o app.Options
	fs.StringVar(&o.Namespace, "namespace", envOr("POD_NAMESPACE", apiv1.DefaultNamespace),
		"the agent's namespace: ConfigMap "+apiv1.ConfigMapName+", Secret "+apiv1.PullSecretName+", certificates, leader lease")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", `address of the Prometheus metrics endpoint; "0" disables it`)
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.BoolVar(&o.LeaderElect, "leader-elect", true, "run the reconcilers on one replica at a time (webhooks are served by all)")
	fs.IntVar(&o.WebhookPort, "webhook-port", 9443, "port of the webhook server")
	fs.StringVar(&o.CertDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs",
		"with --cert-manager: where cert-manager's Secret (tls.crt, tls.key) is mounted; renewals are picked up without a restart")
	fs.BoolVar(&o.CertManager, "cert-manager", false,
		"use the certificate cert-manager maintains (deploy/cert-manager) instead of the built-in self-signed CA")
	fs.StringVar(&o.Service, "webhook-service", app.DefaultService, "name of the webhook Service the serving certificate is for")
	fs.StringVar(&o.ValidatingWebhook, "validating-webhook", app.DefaultValidatingWebhook, "ValidatingWebhookConfiguration to inject the CA bundle into")
	fs.StringVar(&o.MutatingWebhook, "mutating-webhook", app.DefaultMutatingWebhook, "MutatingWebhookConfiguration to inject the CA bundle into")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then in-cluster)")
	qps := fs.Float64("kube-qps", -1, "queries per second of the agent's API client (patches, pull Secrets); -1: no client-side limit, as controller-runtime does in a cluster (the API server's priority and fairness still applies); client-go's default of 5 throttles patching a large cluster")
	burst := fs.Int("kube-burst", 30, "burst of the agent's API client when --kube-qps is positive")
	logFlags := flag.NewFlagSet("log", flag.ContinueOnError)
	logCfg := textlogger.NewConfig()
	logCfg.AddFlags(logFlags)
	logFlags.VisitAll(func(f *flag.Flag) { fs.Var(f.Value, f.Name, f.Usage) })
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	// Structured key=value logs; credentials are never logged (only Secret names).
	logger := textlogger.NewLogger(logCfg)
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)

	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = float32(*qps), *burst
	o.Config = cfg
	ctx := ctrl.SetupSignalHandler()
	a, err := app.New(ctx, o)
	if err != nil {
		return err
	}
	logger.Info("Starting agent", "namespace", o.Namespace, "certManager", o.CertManager, "leaderElect", o.LeaderElect)
	return a.Manager.Start(ctx)
}

func restore(args []string) error {
	fs := flag.NewFlagSet("agent restore", flag.ContinueOnError)
	var o app.RestoreOptions
	fs.StringVar(&o.Namespace, "namespace", envOr("POD_NAMESPACE", apiv1.DefaultNamespace), "the agent's namespace, where its leader lease is")
	fs.StringVar(&o.ValidatingWebhook, "validating-webhook", app.DefaultValidatingWebhook, "ValidatingWebhookConfiguration to delete")
	fs.StringVar(&o.MutatingWebhook, "mutating-webhook", app.DefaultMutatingWebhook, "MutatingWebhookConfiguration to delete")
	fs.BoolVar(&o.Force, "force", false, "restore even though the agent's leader lease is held (it will patch the workloads again)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then in-cluster)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		return err
	}
	n, err := app.Restore(context.Background(), cfg, o)
	fmt.Printf("restored %d workload(s)\n", n)
	return err
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return ctrl.GetConfig()
}
