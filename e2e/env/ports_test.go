package env

import (
	"net"
	"strconv"
	"testing"

	. "github.com/onsi/gomega"
)

// The ports reserved for the hub and agents are distinct, free, and below the ephemeral range.
func TestReservePorts(t *testing.T) {
	g := NewWithT(t)
	low := ephemeralLow()
	ports, err := reservePorts(20, low)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ports).To(HaveLen(20))
	seen := map[int]bool{}
	for _, p := range ports {
		g.Expect(p).To(BeNumerically(">=", 10000))
		g.Expect(p).To(BeNumerically("<", low))
		g.Expect(seen[p]).To(BeFalse(), "port %d twice", p)
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		g.Expect(err).NotTo(HaveOccurred(), "port %d is not free", p)
		_ = l.Close()
	}
}

// A port in use is never handed out, and too few free ports is an error.
func TestReservePorts_skipsPortsInUse(t *testing.T) {
	g := NewWithT(t)
	l, err := net.Listen("tcp", "127.0.0.1:10000")
	if err != nil {
		t.Skipf("port 10000 is taken: %v", err)
	}
	defer func() { _ = l.Close() }()
	ports, err := reservePorts(1, 10002)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ports).To(Equal([]int{10001}))
	_, err = reservePorts(2, 10002)
	g.Expect(err).To(MatchError(ContainSubstring("only 1 free ports")))
}
