//go:build e2e

package reliability

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// stallProxy is a TCP proxy in front of an API server (TLS passes through: the server's
// certificate names 127.0.0.1, which the proxy listens on) that can stall: while stalled it
// still accepts connections and reads what clients send, but forwards nothing either way, as a
// hung API server or a black-holing middlebox would. Resume lets everything held through.
type stallProxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	resumed  chan struct{} // closed while not stalled
	conns    map[net.Conn]bool
	accepted int
	closed   map[int]time.Time // by connection number (1-based, in order of acceptance)
}

// startStallProxy serves a stallProxy on 127.0.0.1 in front of target (host:port) until the
// test cleans up.
func startStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening for the stall proxy: %v", err)
	}
	p := &stallProxy{ln: ln, target: target, resumed: make(chan struct{}), conns: map[net.Conn]bool{}, closed: map[int]time.Time{}}
	close(p.resumed)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port.
func (p *stallProxy) Addr() string { return p.ln.Addr().String() }

// Accepted is how many connections the proxy accepted.
func (p *stallProxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// OpenAt returns the numbers of the connections open at t.
func (p *stallProxy) OpenAt(t time.Time) []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for n := 1; n <= p.accepted; n++ {
		if c, ok := p.closed[n]; !ok || c.After(t) {
			out = append(out, n)
		}
	}
	return out
}

// ClosedAt returns when connection n ended (either side closed it, seen even while stalled),
// zero while it is open.
func (p *stallProxy) ClosedAt(n int) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed[n]
}

// Stall stops forwarding, on open connections and new ones.
func (p *stallProxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.resumed:
		p.resumed = make(chan struct{})
	default:
	}
}

// Resume forwards again, what was held first.
func (p *stallProxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.resumed:
	default:
		close(p.resumed)
	}
}

// gate returns once the proxy is not stalled, false when the connection is gone.
func (p *stallProxy) gate(done <-chan struct{}) bool {
	p.mu.Lock()
	ch := p.resumed
	p.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-done:
		return false
	}
}

func (p *stallProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.accepted++
		n := p.accepted
		p.conns[c] = true
		p.mu.Unlock()
		go p.handle(n, c)
	}
}

// clientClosed records when the client closed connection n (the first time).
func (p *stallProxy) clientClosed(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.closed[n]; !ok {
		p.closed[n] = time.Now()
	}
}

func (p *stallProxy) handle(n int, client net.Conn) {
	done := make(chan struct{})
	var once sync.Once
	closeAll := func(conns ...net.Conn) {
		once.Do(func() { close(done) })
		for _, c := range conns {
			_ = c.Close()
		}
	}
	defer p.clientClosed(n)
	defer func() {
		p.mu.Lock()
		delete(p.conns, client)
		p.mu.Unlock()
	}()
	// Read the client while stalled (what it sends is held, not forwarded), so that its
	// closing the connection is seen when it happens.
	fromClient := make(chan []byte, 1024)
	go func() {
		defer close(fromClient)
		for {
			buf := make([]byte, 32*1024)
			k, err := client.Read(buf)
			if k > 0 {
				select {
				case fromClient <- buf[:k]:
				case <-done:
					return
				}
			}
			if err != nil {
				p.clientClosed(n)
				return
			}
		}
	}()
	if !p.gate(done) {
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	p.mu.Lock()
	p.conns[server] = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, server)
		p.mu.Unlock()
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	// client -> server: what the reader above received, when not stalled.
	go func() {
		defer wg.Done()
		defer closeAll(server, client)
		for b := range fromClient {
			if !p.gate(done) {
				return
			}
			if _, err := server.Write(b); err != nil {
				return
			}
		}
	}()
	// server -> client.
	go func() {
		defer wg.Done()
		defer closeAll(client, server)
		buf := make([]byte, 32*1024)
		for {
			k, err := server.Read(buf)
			if k > 0 {
				if !p.gate(done) {
					return
				}
				if _, werr := client.Write(buf[:k]); werr != nil {
					return
				}
			}
			if err != nil {
				return // EOF or a closed connection: closeAll ends the other direction
			}
		}
	}()
	wg.Wait()
}

func (p *stallProxy) close() {
	_ = p.ln.Close()
	p.Resume()
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
}

func (p *stallProxy) String() string { return fmt.Sprintf("stall proxy %s -> %s", p.Addr(), p.target) }
