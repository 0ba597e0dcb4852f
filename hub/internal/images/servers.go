package images

import (
	"errors"
	"sync"

	"github.com/image-cloner/image-cloner/hub/internal/clusters"
	"github.com/image-cloner/image-cloner/pkg/api/v1alpha1"
)

// maxServerWrites bounds the API servers one reconcile writes to at once.
const maxServerWrites = 8

// eachServer calls write for every user and returns the errors joined, in the order of users.
//
// A reconcile writes the image's status into every member using it, and each write is a round
// trip to that member's API server: one after another, a reconcile over a fleet waited for the
// sum of them (in the fleet benchmark every worker of the images controller sat in those
// writes, and images waited in the queue). So the API servers are written to concurrently,
// at most maxServerWrites at a time.
//
// Registrations naming the same API server (a cluster registered twice, or under two names)
// share its ClonedImage. Their writes run one after another, and each starts from the object
// the previous one wrote or read (when its own cache had that object, by UID, or none): the
// later ones then find the status already there and send nothing, where each would otherwise
// lose the optimistic-lock race against its own stale cache and re-read. The lock still guards
// every write that is sent, so an adopted object that turns out stale only costs a re-read.
func eachServer(users []*user, write func(u *user) error) error {
	var order []string
	groups := map[string][]int{}
	for i, u := range users {
		k := serverOf(u.member)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	errs := make([]error, len(users))
	sem := make(chan struct{}, maxServerWrites)
	var wg sync.WaitGroup
	for _, k := range order {
		wg.Add(1)
		sem <- struct{}{}
		go func(idx []int) {
			defer func() {
				<-sem
				wg.Done()
			}()
			var last *v1alpha1.ClonedImage // the server's object as last written or read
			for _, i := range idx {
				u := users[i]
				if last != nil && (u.current == nil || u.current.UID == last.UID) {
					u.current = last.DeepCopy()
				}
				before := u.current
				errs[i] = write(u)
				if errs[i] == nil && u.current != nil && u.current != before {
					last = u.current
				}
			}
		}(groups[k])
	}
	wg.Wait()
	return errors.Join(errs...)
}

// serverOf names the API server m's clients talk to. Two members with the same address reach
// the same API server, whatever their credentials; a member without a configuration is its own.
func serverOf(m *clusters.Member) string {
	if m.Cluster != nil {
		if cfg := m.Cluster.GetConfig(); cfg != nil && cfg.Host != "" {
			return "host:" + cfg.Host
		}
	}
	return "member:" + m.Name
}
