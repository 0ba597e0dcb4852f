package images

import (
	"errors"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cluster"

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// hostCluster is a cluster.Cluster that only knows its address.
type hostCluster struct {
	cluster.Cluster
	host string
}

func (c hostCluster) GetConfig() *rest.Config { return &rest.Config{Host: c.host} }

func userOn(name, host string, current *v1alpha1.ClonedImage) *user {
	return &user{member: &clusters.Member{Name: name, Cluster: hostCluster{host: host}}, current: current}
}

func clonedImage(uid types.UID, phase v1alpha1.Phase) *v1alpha1.ClonedImage {
	return &v1alpha1.ClonedImage{ObjectMeta: metav1.ObjectMeta{Name: "ci", UID: uid}, Status: v1alpha1.ClonedImageStatus{Phase: phase}}
}

// TestEachServer_laterRegistrationsOfAServerStartFromWhatTheFirstWrote: registrations of one API
// server see the object the previous one wrote (when their cache held that object or none), so
// they find the status in place; registrations of other servers, or whose cache holds another
// object under the name, keep their own.
func TestEachServer_laterRegistrationsOfAServerStartFromWhatTheFirstWrote(t *testing.T) {
	for _, tc := range []struct {
		name string
		// second is the second registration of server a's cached object.
		second *v1alpha1.ClonedImage
		// adopts says whether it starts from what the first wrote.
		adopts bool
	}{
		{"cache holds the same object, stale", clonedImage("uid-a", v1alpha1.PhasePending), true},
		{"cache holds none", nil, true},
		// The positive control: another object under the name (another UID) is not adopted.
		{"cache holds another object", clonedImage("uid-other", v1alpha1.PhasePending), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			first := userOn("a-1", "https://a.example", clonedImage("uid-a", v1alpha1.PhasePending))
			second := userOn("a-2", "https://a.example", tc.second)
			other := userOn("b-1", "https://b.example", clonedImage("uid-b", v1alpha1.PhasePending))
			var mu sync.Mutex
			seen := map[string]v1alpha1.Phase{} // the phase each write started from
			err := eachServer([]*user{first, other, second}, func(u *user) error {
				mu.Lock()
				seen[u.member.Name] = ""
				if u.current != nil {
					seen[u.member.Name] = u.current.Status.Phase
				}
				mu.Unlock()
				if u.current != nil && u.current.Status.Phase == v1alpha1.PhaseReady {
					return nil // already there: nothing written
				}
				written := clonedImage("uid-a", v1alpha1.PhaseReady)
				if u.current != nil {
					written.UID = u.current.UID
				}
				u.current = written
				return nil
			})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(seen["a-1"]).To(Equal(v1alpha1.PhasePending))
			g.Expect(seen["b-1"]).To(Equal(v1alpha1.PhasePending), "another server's registration adopted server a's object")
			if tc.adopts {
				g.Expect(seen["a-2"]).To(Equal(v1alpha1.PhaseReady))
				g.Expect(second.current).NotTo(BeIdenticalTo(first.current), "an adopted object must be a copy")
			} else {
				g.Expect(seen["a-2"]).To(Equal(tc.second.Status.Phase))
				g.Expect(second.current.UID).To(Equal(types.UID("uid-other")))
			}
		})
	}
}

// TestEachServer_joinsErrorsInTheOrderOfUsers: every user is written even when others fail, a
// failed write is not passed on to the server's next registration, and the errors come back in
// the order of users whatever order the servers finished in.
func TestEachServer_joinsErrorsInTheOrderOfUsers(t *testing.T) {
	g := NewWithT(t)
	users := []*user{
		userOn("a-1", "https://a.example", clonedImage("uid-a", v1alpha1.PhasePending)),
		userOn("b-1", "https://b.example", nil),
		userOn("a-2", "https://a.example", clonedImage("uid-a", v1alpha1.PhasePending)),
		userOn("c-1", "https://c.example", nil),
	}
	var mu sync.Mutex
	written := map[string]bool{}
	err := eachServer(users, func(u *user) error {
		mu.Lock()
		written[u.member.Name] = true
		mu.Unlock()
		switch u.member.Name {
		case "a-1":
			u.current = clonedImage("uid-a", v1alpha1.PhaseFailed) // what a failed write may leave
			return errors.New("a-1 failed")
		case "a-2":
			if u.current.Status.Phase != v1alpha1.PhasePending {
				return errors.New("a-2 adopted what a failed write left")
			}
		case "c-1":
			return errors.New("c-1 failed")
		}
		return nil
	})
	g.Expect(written).To(HaveLen(4))
	g.Expect(err).To(MatchError("a-1 failed\nc-1 failed"))
}
