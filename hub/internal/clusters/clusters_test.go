package clusters

import (
	"testing"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/image-cloner/image-cloner/internal/registration"
)

func secret(name string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "hub", Name: name, UID: types.UID("u-" + name)}}
}

func TestConnect_setsQPSAndBurstOnACopyOfTheConfig(t *testing.T) {
	g := NewWithT(t)
	r := New(nil, nil, logr.Discard(), Options{QPS: 42, Burst: 84})
	in := &rest.Config{Host: "https://member.example"}
	r.connect(secret("a"), &registration.Registration{Cluster: "a", Config: in}, "h1")
	c := r.conns["hub/a"]
	g.Expect(c.config.QPS).To(BeNumerically("==", 42))
	g.Expect(c.config.Burst).To(Equal(84))
	g.Expect(in.QPS).To(BeZero(), "the parsed config is not modified")

	d := New(nil, nil, logr.Discard(), Options{})
	d.connect(secret("a"), &registration.Registration{Cluster: "a", Config: in}, "h1")
	g.Expect(d.conns["hub/a"].config.QPS).To(BeNumerically("==", 20))
	g.Expect(d.conns["hub/a"].config.Burst).To(Equal(30))
}

func TestConnect_sameHashKeepsTheConnectionAndNewHashReplacesIt(t *testing.T) {
	g := NewWithT(t)
	r := New(nil, nil, logr.Discard(), Options{})
	cfg := &rest.Config{Host: "https://member.example"}
	r.connect(secret("a"), &registration.Registration{Cluster: "a", Config: cfg}, "h1")
	first := r.conns["hub/a"]
	r.connect(secret("a"), &registration.Registration{Cluster: "a", Config: cfg}, "h1")
	g.Expect(r.conns["hub/a"]).To(BeIdenticalTo(first))
	r.connect(secret("a"), &registration.Registration{Cluster: "a", Config: cfg}, "h2")
	g.Expect(r.conns["hub/a"]).NotTo(BeIdenticalTo(first))
	g.Expect(r.Snapshot()).To(HaveLen(1))
	g.Expect(r.Snapshot()[0].Hash).To(Equal("h2"))
}

func TestConnect_aClusterNameRegisteredTwiceIsInvalid(t *testing.T) {
	g := NewWithT(t)
	r := New(nil, nil, logr.Discard(), Options{})
	cfg := &rest.Config{Host: "https://member.example"}
	r.connect(secret("a"), &registration.Registration{Cluster: "same", Config: cfg}, "h1")
	g.Expect(r.connect(secret("b"), &registration.Registration{Cluster: "same", Config: cfg}, "h2")).To(MatchError(errDuplicate))
	snap := r.Snapshot()
	g.Expect(snap).To(HaveLen(2))
	g.Expect(snap[0].Secret).To(Equal("hub/a"))
	g.Expect(snap[0].State).To(Equal(Connecting))
	g.Expect(snap[1].Secret).To(Equal("hub/b"))
	g.Expect(snap[1].State).To(Equal(Invalid))
	g.Expect(snap[1].LastError).To(ContainSubstring(`cluster name "same" is already registered by hub/a`))

	r.disconnect("hub/a")
	g.Expect(r.Snapshot()).To(HaveLen(1))
	g.Expect(r.Members()).To(BeEmpty())
	// Asked again (the Reconciler requeues), the name is free now.
	g.Expect(r.connect(secret("b"), &registration.Registration{Cluster: "same", Config: cfg}, "h2")).To(Succeed())
	g.Expect(r.Snapshot()[0].State).To(Equal(Connecting))
}
