package proxytest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A cutProxy is a TCP proxy on loopback that cuts connections the way
// unfriendly middleboxes do: after idle of silence in both directions (a NAT
// or load balancer idle timeout), or life after they opened (a proxy that
// recycles connections), whichever is set. Both sides of a cut connection
// are closed with a reset, without a word to either.
type cutProxy struct {
	ln      net.Listener
	backend string
	idle    time.Duration // 0: no idle cut
	life    time.Duration // 0: no lifetime cut

	cuts  atomic.Int64 // connections cut by idle or life
	conns atomic.Int64 // connections accepted

	mu     sync.Mutex
	open   map[*proxyConn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// startCutProxy forwards a free loopback port to backend and stops when the
// test ends.
func startCutProxy(t testing.TB, backend string, idle, life time.Duration) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, backend: backend, idle: idle, life: life, open: make(map[*proxyConn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// URL is the proxy as a client's base URL.
func (p *cutProxy) URL() string { return "http://" + p.ln.Addr().String() }

// Cuts is how many connections the proxy has cut so far.
func (p *cutProxy) Cuts() int64 { return p.cuts.Load() }

// Conns is how many connections the proxy has accepted so far.
func (p *cutProxy) Conns() int64 { return p.conns.Load() }

// Runs in its own goroutine until the listener closes.
func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.conns.Add(1)
		p.wg.Add(1)
		go p.serve(c)
	}
}

// A proxyConn is one client connection and its connection to the backend.
type proxyConn struct {
	client, backend net.Conn
	last            atomic.Int64 // unix nanoseconds of the last byte either way
	once            sync.Once
}

// close resets both sides; it reports whether this call did it.
func (c *proxyConn) close() bool {
	done := false
	c.once.Do(func() {
		for _, conn := range []net.Conn{c.client, c.backend} {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			conn.Close()
		}
		done = true
	})
	return done
}

// serve pipes one connection both ways and watches it for idle and age.
// Runs in its own goroutine until the connection ends.
func (p *cutProxy) serve(client net.Conn) {
	defer p.wg.Done()
	backend, err := net.DialTimeout("tcp", p.backend, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	c := &proxyConn{client: client, backend: backend}
	c.last.Store(time.Now().UnixNano())
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.close()
		return
	}
	p.open[c] = struct{}{}
	p.mu.Unlock()

	ended := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				c.last.Store(time.Now().UnixNano())
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		ended <- struct{}{}
	}
	go pipe(backend, client)
	go pipe(client, backend)

	watch := time.NewTicker(10 * time.Millisecond)
	defer watch.Stop()
	born := time.Now()
	remaining := 2
	for remaining > 0 {
		select {
		case <-ended:
			remaining--
			// Either side hung up (HTTP has no half-close): end the pair.
			c.close()
		case now := <-watch.C:
			cut := p.life > 0 && now.Sub(born) >= p.life
			cut = cut || p.idle > 0 && now.Sub(time.Unix(0, c.last.Load())) >= p.idle
			if cut && c.close() {
				p.cuts.Add(1)
			}
		}
	}
	c.close()
	p.mu.Lock()
	delete(p.open, c)
	p.mu.Unlock()
}

func (p *cutProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.open {
		c.close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
