package soak

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dialProxy opens a plain connection through p, closed when the test ends.
func dialProxy(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(p.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// echo sends s through c and fails t unless it comes back.
func echo(t *testing.T, c net.Conn, s string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(wait))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("write %q: %v", s, err)
	}
	got := make([]byte, len(s))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != s {
		t.Fatalf("echo of %q: %q, %v", s, got, err)
	}
}

// readErr reads c until it fails (within wait) and returns the error.
func readErr(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(wait))
	_, err := io.Copy(io.Discard, c)
	if err == nil {
		return io.EOF // io.Copy reports a clean end as nil
	}
	return err
}

// waitCount waits (at most wait) for count to reach want and returns its
// last value: the proxy counts a cut just after making it, so a test that
// saw the cut may look a moment too early.
func waitCount(count func() int64, want int64) int64 {
	deadline := time.Now().Add(wait)
	for count() < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return count()
}

// TestProxyCutAll: every connection goes, streams and others alike, and
// new ones are still relayed.
func TestProxyCutAll(t *testing.T) {
	addr := echoServer(t, func(c net.Conn) { io.Copy(c, c) })
	for _, how := range []Cut{CutClose, CutReset} {
		t.Run(how.String(), func(t *testing.T) {
			p := StartProxy(t, []string{addr})
			stream, post := dialProxy(t, p), dialProxy(t, p)
			echo(t, stream, "GET /events HTTP/1.1\r\n\r\n")
			echo(t, post, "POST /sessions/x/chat HTTP/1.1\r\n\r\n")
			if n := p.CutAll(how); n != 2 {
				t.Fatalf("cut %d connections, want 2", n)
			}
			for _, c := range []net.Conn{stream, post} {
				err := readErr(c)
				switch {
				case how == CutClose && !errors.Is(err, io.EOF):
					t.Errorf("read after a close: %v, want EOF", err)
				case how == CutReset && !errors.Is(err, syscall.ECONNRESET):
					t.Errorf("read after a reset: %v, want ECONNRESET", err)
				}
			}
			if got := p.Cuts()[how]; got != 2 {
				t.Errorf("%d cuts counted, want 2", got)
			}
			echo(t, dialProxy(t, p), "after the cut")
		})
	}
}

// TestProxyDownUp: while down, connections are closed and new ones
// refused; up again, on the same address, it relays.
func TestProxyDownUp(t *testing.T) {
	addr := echoServer(t, func(c net.Conn) { io.Copy(c, c) })
	p := StartProxy(t, []string{addr})
	url := p.URL()
	c := dialProxy(t, p)
	echo(t, c, "before")
	if n := p.Down(); n != 1 {
		t.Fatalf("Down closed %d connections, want 1", n)
	}
	if err := readErr(c); !errors.Is(err, io.EOF) {
		t.Errorf("read after Down: %v, want EOF", err)
	}
	if _, err := net.Dial("tcp", strings.TrimPrefix(url, "http://")); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial while down: %v, want connection refused", err)
	}
	if n := p.Down(); n != 0 {
		t.Errorf("a second Down closed %d", n)
	}
	if err := p.Up(); err != nil {
		t.Fatal(err)
	}
	if err := p.Up(); err != nil {
		t.Fatalf("Up when up: %v", err)
	}
	if p.URL() != url {
		t.Errorf("URL %s after Up, was %s", p.URL(), url)
	}
	echo(t, dialProxy(t, p), "after")
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Up(); err == nil {
		t.Error("Up after Close succeeded")
	}
}

// TestProxyDownRate: a throttled connection takes at least its size over
// its rate (a lower bound only: a slow machine is slower still), every
// byte intact; the other way is not throttled.
func TestProxyDownRate(t *testing.T) {
	const size, rate = 256 << 10, 512 << 10 // half a second's worth
	payload := strings.Repeat("0123456789abcdef", size/16)
	addr := echoServer(t, func(c net.Conn) {
		defer c.Close()
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			return
		}
		io.WriteString(c, payload)
	})
	p := StartProxy(t, []string{addr}, WithDownRate(rate))
	c := dialProxy(t, p)
	start := time.Now()
	io.WriteString(c, "GET /big HTTP/1.1\n")
	c.SetReadDeadline(time.Now().Add(wait))
	got, err := io.ReadAll(c)
	took := time.Since(start)
	if err != nil || string(got) != payload {
		t.Fatalf("read %d of %d bytes intact: %v", len(got), size, err)
	}
	if min := time.Second * size / rate * 3 / 4; took < min {
		t.Errorf("%d bytes at %d B/s took %v, under %v: not throttled", size, rate, took, min)
	}
}

// TestProxyIdleCut: a connection silent for the idle time is reset both
// ways and counted; one that keeps talking is not.
func TestProxyIdleCut(t *testing.T) {
	serverSaw := make(chan error, 2)
	addr := echoServer(t, func(c net.Conn) {
		defer c.Close()
		_, err := io.Copy(c, c)
		if err == nil {
			err = io.EOF
		}
		serverSaw <- err
	})
	// A second: a busy connection that talks every 50 ms is not cut even
	// on a loaded machine.
	const idle = time.Second
	p := StartProxy(t, []string{addr}, WithIdleCut(idle))

	busy := dialProxy(t, p)
	for end := time.Now().Add(2 * idle); time.Now().Before(end); time.Sleep(idle / 20) {
		echo(t, busy, "x")
	}
	if got := p.Timeouts(); got != 0 {
		t.Fatalf("%d connections cut while each talked every %v (idle cut %v)", got, idle/20, idle)
	}

	quiet := dialProxy(t, p)
	echo(t, quiet, "hello")
	silentFrom := time.Now()
	if err := readErr(quiet); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client read on a silent connection: %v, want ECONNRESET", err)
	}
	if silent := time.Since(silentFrom); silent < idle {
		t.Errorf("cut after %v of silence, before the idle time %v", silent, idle)
	}
	// The busy connection falls silent too now, so two cuts in the end.
	if err := readErr(busy); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("client read on the formerly busy connection: %v, want ECONNRESET", err)
	}
	for range 2 {
		select {
		case err := <-serverSaw:
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("server read: %v, want ECONNRESET", err)
			}
		case <-time.After(wait):
			t.Fatal("the server side of a connection was never cut")
		}
	}
	if got := waitCount(p.Timeouts, 2); got != 2 {
		t.Errorf("%d timeouts counted, want 2", got)
	}
	if got := p.Conns(); got != 2 {
		t.Errorf("%d connections counted, want 2", got)
	}
}

// TestProxyLifetime: a connection is reset once its lifetime is up,
// however busy.
func TestProxyLifetime(t *testing.T) {
	addr := echoServer(t, func(c net.Conn) { io.Copy(c, c) })
	const life = 300 * time.Millisecond
	p := StartProxy(t, []string{addr}, WithLifetime(life))
	start := time.Now()
	c := dialProxy(t, p)
	var err error
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(life / 30) {
		c.SetDeadline(time.Now().Add(wait))
		if _, err = io.WriteString(c, "x"); err != nil {
			break
		}
		if _, err = io.ReadFull(c, make([]byte, 1)); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Errorf("a busy connection past its lifetime: %v, want a reset", err)
	}
	if lived := time.Since(start); lived < life {
		t.Errorf("cut after %v, before its lifetime %v", lived, life)
	}
	if got := waitCount(p.Timeouts, 1); got != 1 {
		t.Errorf("%d timeouts counted, want 1", got)
	}
}

// TestProxyGhost: the first stream request on a reused connection is held
// back, the client's side closed at once; the server gets the request the
// delay later, on the old connection, and its answer goes nowhere. A
// stream request on a fresh connection, and any after the first ghost, go
// through.
func TestProxyGhost(t *testing.T) {
	type line struct {
		s  string
		at time.Time
	}
	got := make(chan line, 16)
	addr := echoServer(t, func(c net.Conn) {
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			s, err := r.ReadString('\n')
			if err != nil {
				return
			}
			got <- line{s, time.Now()}
			if _, err := io.WriteString(c, s); err != nil {
				return
			}
		}
	})
	const delay = 300 * time.Millisecond
	p := StartProxy(t, []string{addr}, WithGhost(delay))

	fresh := dialProxy(t, p)
	echo(t, fresh, "GET /events?fresh\n") // first on its connection: relayed
	<-got

	reused := dialProxy(t, p)
	echo(t, reused, "POST /chat\n")
	<-got
	heldAt := time.Now()
	io.WriteString(reused, "GET /events?ghost\n")
	if err := readErr(reused); !errors.Is(err, io.EOF) {
		t.Errorf("client read after its request was held: %v, want EOF", err)
	}
	select {
	case <-p.Ghosted():
	case <-time.After(wait):
		t.Fatal("the held request never went out")
	}
	select {
	case l := <-got:
		if l.s != "GET /events?ghost\n" {
			t.Errorf("the server got %q, want the held request", l.s)
		}
		if l.at.Sub(heldAt) < delay {
			t.Errorf("the held request reached the server after %v, under the delay %v", l.at.Sub(heldAt), delay)
		}
	case <-time.After(wait):
		t.Fatal("the server never got the held request")
	}

	// Only the first is held.
	again := dialProxy(t, p)
	echo(t, again, "POST /chat\n")
	echo(t, again, "GET /events?again\n")
}

// TestProxyUpstreamBuffer: behind a throttled proxy with a small upstream
// buffer, a server that writes as fast as it can gets out little more than
// the buffers on the way plus the rate for the time; with the kernel's
// default buffer (128 KiB here, more where the kernel autotunes it) the
// proxy takes clearly more.
func TestProxyUpstreamBuffer(t *testing.T) {
	const (
		rate   = 50 << 10
		small  = 16 << 10
		sndbuf = 16 << 10
		period = 500 * time.Millisecond
	)
	written := func(opts ...ProxyOption) int {
		got := make(chan int, 1)
		addr := echoServer(t, func(c net.Conn) {
			defer c.Close()
			// A small send buffer on the server, so what it gets out is
			// what the proxy takes.
			c.(*net.TCPConn).SetWriteBuffer(sndbuf)
			c.SetWriteDeadline(time.Now().Add(period))
			n := 0
			for buf := make([]byte, 16<<10); ; {
				k, err := c.Write(buf)
				n += k
				if err != nil {
					break
				}
			}
			got <- n
		})
		p := StartProxy(t, []string{addr}, append(opts, WithDownRate(rate))...)
		c := dialProxy(t, p)
		io.WriteString(c, "GET /a-lot HTTP/1.1\n")
		select {
		case n := <-got:
			return n
		case <-time.After(wait):
			t.Fatal("the server never stopped writing")
			return 0
		}
	}
	// Linux doubles a socket buffer asked for (the bookkeeping's share):
	// the server's, the proxy's window, the proxy's read buffer, the rate.
	limit := 2*sndbuf + 2*2*small + 16<<10 + rate*int(period/time.Millisecond)/1000
	smallN, defaultN := written(WithUpstreamBuffer(small)), written()
	if smallN > limit {
		t.Errorf("with a %d-byte upstream buffer the server wrote %d bytes in %v, want <= %d", small, smallN, period, limit)
	}
	if defaultN < smallN+2*small {
		t.Errorf("the server wrote %d bytes with the kernel's buffer, %d with a %d-byte one: the option does not limit it", defaultN, smallN, small)
	}
}
