package web_test

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// A tcpProxy stands between the browser and the server on 127.0.0.1 so a
// test can cut every connection at once, as a network loss does, while the
// server keeps the session: the page must then resume it.
type tcpProxy struct {
	ln       net.Listener
	backend  string
	downRate int // bytes a second from the server to the browser; 0: no limit

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// startProxy listens on a free loopback port and forwards each connection to
// backend ("127.0.0.1:PORT"), at most downRate bytes a second towards the
// browser (0: as fast as it goes), so a test can catch a transfer midway. It
// stops when the test ends.
func startProxy(t testing.TB, backend string, downRate int) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &tcpProxy{ln: ln, backend: backend, downRate: downRate, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// URL is the proxy's address as the browser uses it.
func (p *tcpProxy) URL() string { return "http://" + p.ln.Addr().String() }

// Runs in its own goroutine until the listener closes.
func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve pipes one connection both ways; when either side ends, both close.
// Runs in its own goroutine.
func (p *tcpProxy) serve(c net.Conn) {
	defer p.wg.Done()
	b, err := net.DialTimeout("tcp", p.backend, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	if !p.track(c, b) {
		c.Close()
		b.Close()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn, rate int) {
		// An error (a reset, a close by dropAll) just ends the pair.
		_ = copyLimited(dst, src, rate)
		done <- struct{}{}
	}
	go pipe(b, c, 0)
	go pipe(c, b, p.downRate)
	<-done
	c.Close()
	b.Close()
	<-done
	p.untrack(c, b)
}

func (p *tcpProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *tcpProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

// dropAll closes every connection open now, both sides, without answering:
// what the browser sees when the network goes away. New connections are
// still accepted.
func (p *tcpProxy) dropAll() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, not a polite close
		}
		c.Close()
	}
	return len(p.conns) / 2
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// copyLimited copies src to dst at most bytesPerSec a second (0: no limit).
func copyLimited(dst io.Writer, src io.Reader, bytesPerSec int) error {
	if bytesPerSec <= 0 {
		_, err := io.Copy(dst, src)
		return err
	}
	buf := make([]byte, 16<<10)
	start := time.Now()
	sent := 0
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
			sent += n
			due := time.Duration(sent) * time.Second / time.Duration(bytesPerSec)
			if ahead := due - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		if err != nil {
			return err
		}
	}
}
