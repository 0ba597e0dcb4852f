package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/internal/registration"
	"github.com/image-cloner/image-cloner/internal/testenv"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// TestClusters_deleteDisconnectsAndRotateReconnects deletes one member's registration Secret and
// shows that member is no longer served, then registers it again and rotates its kubeconfig:
// first to an identity without permissions (the hub reports it), then to a new valid user (the
// hub reconnects and serves it again).
func TestClusters_deleteDisconnectsAndRotateReconnects(t *testing.T) {
	g := NewWithT(t)
	f := startFleet(t, fleetOptions{members: 2})
	ctx := t.Context()
	m1, m2 := f.members[0], f.members[1]
	s1 := f.register(m1, registration.Label)
	f.register(m2, registration.Label)
	f.waitState(m1.Name, clusters.Connected)
	f.waitState(m2.Name, clusters.Connected)
	f.waitSeries("image_cloner_cluster_connected", map[string]float64{m1.Name: 1, m2.Name: 1})

	g.Expect(f.hub.Client.Delete(ctx, s1)).To(Succeed())
	g.Expect(testenv.WaitFor(ctx, wait, func(context.Context) (bool, error) {
		return f.status(m1.Name).State == "" && f.h.Fleet.Member(m1.Name) == nil, nil
	})).To(Succeed(), "still registered: %+v", f.h.Fleet.Snapshot())
	// A deleted registration takes its series with it: nothing is left to alert on.
	f.waitSeries("image_cloner_cluster_connected", map[string]float64{m2.Name: 1})

	// The same image in both members: the reconcile that makes it Ready in member2 looks at every
	// connected member, so member1 having none proves it is no longer served.
	image, _ := f.seed("team/after-delete:1")
	ns1, ns2 := namespace(t, m1), namespace(t, m2)
	g.Expect(m1.Client.Create(ctx, deployment(ns1, "web", image))).To(Succeed())
	g.Expect(m2.Client.Create(ctx, deployment(ns2, "web", image))).To(Succeed())
	waitPhase(t, m2, image, v1alpha1.PhaseReady)
	ci, err := clonedImage(ctx, m1, image)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ci).To(BeNil(), "a deregistered member was still written to")

	// Register again, then rotate to a user that may do nothing: the hub notices the change
	// and reports what is missing.
	s1 = f.register(m1, registration.Label)
	f.waitState(m1.Name, clusters.Connected)
	waitPhase(t, m1, image, v1alpha1.PhaseReady) // caught up on reconnect
	before := f.status(m1.Name).Hash

	nobody, err := m1.Env.AddUser(envtest.User{Name: "nobody"}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	rotate(t, f, s1, nobody)
	f.waitState(m1.Name, clusters.Unreachable)
	f.waitSeries("image_cloner_cluster_connected", map[string]float64{m1.Name: 0, m2.Name: 1})
	g.Expect(f.status(m1.Name).LastError).To(ContainSubstring("may not list"))
	g.Expect(f.status(m1.Name).Hash).NotTo(Equal(before))

	admin, err := m1.Env.AddUser(envtest.User{Name: "rotated-admin", Groups: []string{"system:masters"}}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	rotate(t, f, s1, admin)
	f.waitState(m1.Name, clusters.Connected)
	later, _ := f.seed("team/after-rotate:1")
	g.Expect(m1.Client.Create(ctx, deployment(ns1, "later", later))).To(Succeed())
	waitPhase(t, m1, later, v1alpha1.PhaseReady)
}

func rotate(t *testing.T, f *fleet, s *corev1.Secret, user *envtest.AuthenticatedUser) {
	t.Helper()
	g := NewWithT(t)
	kc, err := user.KubeConfig()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.hub.Client.Get(t.Context(), client.ObjectKeyFromObject(s), s)).To(Succeed())
	s.Data[registration.KubeconfigKey] = kc
	g.Expect(f.hub.Client.Update(t.Context(), s)).To(Succeed())
}

// TestClusters_malformedSecretsAreReportedWhileOthersAreServed registers six broken Secrets
// next to a good one: each gets a Warning Event and an Invalid or Unreachable state, none
// quoting the kubeconfig, and the good member keeps being served.
func TestClusters_malformedSecretsAreReportedWhileOthersAreServed(t *testing.T) {
	g := NewWithT(t)
	f := startFleet(t, fleetOptions{members: 1})
	ctx := t.Context()
	m1 := f.members[0]

	raw, err := clientcmd.Load(m1.Kubeconfig)
	g.Expect(err).NotTo(HaveOccurred())
	raw.CurrentContext = "nope"
	unknownContext, err := clientcmd.Write(*raw)
	g.Expect(err).NotTo(HaveOccurred())
	raw, _ = clientcmd.Load(m1.Kubeconfig)
	for _, c := range raw.Clusters {
		c.Server = "https://127.0.0.1:1"
	}
	unreachable, err := clientcmd.Write(*raw)
	g.Expect(err).NotTo(HaveOccurred())
	otherCA, err := testenv.NewCA()
	g.Expect(err).NotTo(HaveOccurred())
	raw, _ = clientcmd.Load(m1.Kubeconfig)
	for _, c := range raw.Clusters {
		c.CertificateAuthorityData = otherCA.CertPEM
	}
	wrongCA, err := clientcmd.Write(*raw)
	g.Expect(err).NotTo(HaveOccurred())
	raw, _ = clientcmd.Load(m1.Kubeconfig)
	for _, a := range raw.AuthInfos {
		a.ClientCertificateData, a.ClientKeyData, a.Token = nil, nil, "revoked-token-123"
	}
	badToken, err := clientcmd.Write(*raw)
	g.Expect(err).NotTo(HaveOccurred())

	broken := map[string]struct {
		data   map[string][]byte
		state  clusters.State
		reason string
		says   string
	}{
		"missing-key":     {map[string][]byte{"config": m1.Kubeconfig}, clusters.Invalid, clusters.ReasonInvalidKubeconfig, `has no key "kubeconfig"`},
		"bad-yaml":        {map[string][]byte{"kubeconfig": []byte("apiVersion: v1\nclusters: [ {{{ secret-token-123")}, clusters.Invalid, clusters.ReasonInvalidKubeconfig, "is not a valid kubeconfig"},
		"unknown-context": {map[string][]byte{"kubeconfig": unknownContext}, clusters.Invalid, clusters.ReasonInvalidKubeconfig, `current-context "nope"`},
		"unreachable":     {map[string][]byte{"kubeconfig": unreachable}, clusters.Unreachable, clusters.ReasonUnreachable, "127.0.0.1:1"},
		"wrong-ca":        {map[string][]byte{"kubeconfig": wrongCA}, clusters.Unreachable, clusters.ReasonUnreachable, "certificate"},
		"bad-token":       {map[string][]byte{"kubeconfig": badToken}, clusters.Unreachable, clusters.ReasonUnreachable, "refused the kubeconfig's credentials (401)"},
	}
	for n, b := range broken {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: n, Labels: map[string]string{registration.ClusterLabel: "true"}},
			Data:       b.data,
		}
		g.Expect(f.hub.Client.Create(ctx, s)).To(Succeed())
	}
	f.register(m1, registration.Label)

	for n, b := range broken {
		var ev *corev1.Event
		g.Expect(testenv.WaitFor(ctx, wait, func(ctx context.Context) (bool, error) {
			var list corev1.EventList
			if err := f.hub.Client.List(ctx, &list, client.InNamespace(f.ns)); err != nil {
				return false, err
			}
			for i, e := range list.Items {
				if e.InvolvedObject.Name == n && e.InvolvedObject.Kind == "Secret" && e.Reason == b.reason {
					ev = &list.Items[i]
					return true, nil
				}
			}
			return false, nil
		})).To(Succeed(), "no %s Event on Secret %s", b.reason, n)
		g.Expect(ev.Type).To(Equal(corev1.EventTypeWarning))
		msg := ev.Message
		g.Expect(msg).To(ContainSubstring(b.says))
		g.Expect(msg).NotTo(ContainSubstring("secret-token-123"))
		g.Expect(msg).NotTo(ContainSubstring("revoked-token-123"))
		g.Expect(msg).NotTo(ContainSubstring("BEGIN CERTIFICATE"))
		g.Expect(strings.Contains(msg, string(m1.Config.CAData[:40]))).To(BeFalse())

		var st clusters.Status
		for _, s := range f.h.Fleet.Snapshot() {
			if s.Secret == f.ns+"/"+n {
				st = s
			}
		}
		g.Expect(st.State).To(Equal(b.state), "Secret %s: %+v", n, st)
		g.Expect(st.LastError).To(ContainSubstring(b.says))
	}

	f.waitState(m1.Name, clusters.Connected)
	image, _ := f.seed("team/served:1")
	g.Expect(m1.Client.Create(ctx, deployment(namespace(t, m1), "web", image))).To(Succeed())
	waitPhase(t, m1, image, v1alpha1.PhaseReady)
	g.Expect(f.status("unreachable").State).To(Equal(clusters.Unreachable), "still retried, still unreachable")
}

// TestClusters_memberOutageDoesNotBlockOthers stops one member's API server: the other member
// keeps being served; when it comes back the hub reconnects and catches up with a workload
// whose image appeared upstream during the outage.
func TestClusters_memberOutageDoesNotBlockOthers(t *testing.T) {
	g := NewWithT(t)
	f := startFleet(t, fleetOptions{isolated: true, members: 2})
	ctx := t.Context()
	m1, m2 := f.members[0], f.members[1]
	f.register(m1, registration.Label)
	f.register(m2, registration.ClusterAPI)
	f.waitState(m1.Name, clusters.Connected)
	f.waitState(m2.Name, clusters.Connected)

	// A workload whose image does not exist yet: it fails before the outage.
	pending := f.upstream.Host + "/team/pending:1"
	ns1 := namespace(t, m1)
	g.Expect(m1.Client.Create(ctx, deployment(ns1, "pending", pending))).To(Succeed())
	failed := waitPhase(t, m1, pending, v1alpha1.PhaseFailed)
	g.Expect(failed.Status.Conditions).To(ContainElement(HaveField("Reason", v1alpha1.ReasonSourceNotFound)))

	stopping := time.Now()
	g.Expect(m1.StopAPIServer()).To(Succeed())
	stopped := time.Since(stopping)
	f.waitState(m1.Name, clusters.Unreachable)
	testenv.Report(t, "hub: member outage detected %s after asking its API server to stop (stopping took %s; probe every 250ms, 2 failures)",
		time.Since(stopping).Round(time.Millisecond), stopped.Round(time.Millisecond))

	image, _ := f.seed("team/during-outage:1")
	g.Expect(m2.Client.Create(ctx, daemonSet(namespace(t, m2), "agent", image))).To(Succeed())
	waitPhase(t, m2, image, v1alpha1.PhaseReady)
	g.Expect(f.status(m1.Name).State).To(Equal(clusters.Unreachable))

	// The missing image is published while member1 is down; when it is back, the hub replays
	// member1's workloads and backs it up without waiting for its retry backoff.
	_, digest := f.seed("team/pending:1")
	g.Expect(m1.StartAPIServer()).To(Succeed())
	restarted := time.Now()
	f.waitState(m1.Name, clusters.Connected)
	ci := waitPhase(t, m1, pending, v1alpha1.PhaseReady)
	testenv.Report(t, "hub: member back to caught up (reconnected, image copied, ClonedImage Ready) %s after its API server was healthy", time.Since(restarted).Round(time.Millisecond))
	g.Expect(ci.Status.Digest).To(Equal(digest.String()))
}
