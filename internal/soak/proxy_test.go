package soak

import (
	"bufio"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// echoServer accepts connections and hands each to serve in its own
// goroutine; the test's cleanup stops it.
func echoServer(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	conns := make(chan net.Conn, 16)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// throughProxy opens a connection through p and sends a stream request, so
// the proxy takes it for a stream.
func throughProxy(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c := dialProxy(t, p)
	if _, err := io.WriteString(c, "GET /events HTTP/1.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestProxyCuts: each way of cutting has the effect the soak relies on.
func TestProxyCuts(t *testing.T) {
	serverSaw := make(chan error, 4)
	addr := echoServer(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := br.ReadString('\n'); err != nil {
			serverSaw <- err
			return
		}
		// Write until the connection fails, as a stream does.
		for {
			if _, err := c.Write([]byte("data: tick\n\n")); err != nil {
				serverSaw <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
	p, err := NewProxy([]string{addr}, WithHold(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	rng := rand.New(rand.NewPCG(1, 1))

	for _, how := range []Cut{CutClose, CutReset, CutStall} {
		t.Run(how.String(), func(t *testing.T) {
			c := throughProxy(t, p)
			buf := make([]byte, 64)
			if _, err := io.ReadAtLeast(c, buf, 1); err != nil {
				t.Fatalf("nothing relayed: %v", err)
			}
			deadline := time.Now().Add(wait)
			for p.Streams() == 0 {
				if time.Now().After(deadline) {
					t.Fatal("the proxy did not take the connection for a stream")
				}
				time.Sleep(time.Millisecond)
			}
			cutAt := time.Now()
			if !p.CutOne(rng, how) {
				t.Fatal("no stream to cut")
			}
			// The client side: the stream ends (close, reset) or goes silent.
			c.SetReadDeadline(time.Now().Add(wait))
			var readErr error
			silentFor := time.Duration(0)
			for {
				n, err := c.Read(buf)
				if err != nil {
					readErr = err
					break
				}
				if n > 0 {
					silentFor = 0
					if how == CutStall && time.Since(cutAt) > 100*time.Millisecond {
						t.Fatalf("a stalled link relayed %d bytes %v after the cut", n, time.Since(cutAt))
					}
				}
			}
			silentFor = time.Since(cutAt)
			serverErr := <-serverSaw
			switch how {
			case CutClose:
				if !errors.Is(readErr, io.EOF) {
					t.Errorf("client read %v, want EOF", readErr)
				}
			case CutReset:
				if !errors.Is(readErr, syscall.ECONNRESET) && !errors.Is(readErr, io.EOF) {
					t.Errorf("client read %v, want a reset", readErr)
				}
				if !errors.Is(serverErr, syscall.ECONNRESET) && !errors.Is(serverErr, syscall.EPIPE) {
					t.Errorf("server write %v, want ECONNRESET or EPIPE", serverErr)
				}
			case CutStall:
				if silentFor < 300*time.Millisecond {
					t.Errorf("the stalled link ended after %v, before its hold of 300ms", silentFor)
				}
				if !errors.Is(serverErr, syscall.ECONNRESET) && !errors.Is(serverErr, syscall.EPIPE) {
					t.Errorf("server write after the hold: %v, want ECONNRESET or EPIPE", serverErr)
				}
			}
			if got := p.Cuts()[how]; got != 1 {
				t.Errorf("%d cuts counted, want 1", got)
			}
		})
	}
}

// TestProxyLeavesPostsAlone: a connection whose last request was not a
// stream is never cut.
func TestProxyLeavesPostsAlone(t *testing.T) {
	addr := echoServer(t, func(c net.Conn) { io.Copy(c, c) })
	p, err := NewProxy([]string{addr})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", strings.TrimPrefix(p.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, req := range []string{"GET /events?session=x HTTP/1.1\r\n\r\n", "POST /sessions/x/chat HTTP/1.1\r\n\r\n"} {
		io.WriteString(c, req)
		got := make([]byte, len(req))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != req {
			t.Fatalf("echo %q: %v", got, err)
		}
	}
	if p.CutOne(rand.New(rand.NewPCG(1, 1)), CutClose) {
		t.Fatal("the proxy cut a connection whose last request was a POST")
	}
}

// TestProxyTargets: with several targets, new connections go to each in
// turn, one refusing connections is skipped, and a session's stream landing
// on another target than its last counts as a move.
func TestProxyTargets(t *testing.T) {
	echo := func(c net.Conn) { io.Copy(c, c) }
	a, b := echoServer(t, echo), echoServer(t, echo)
	// A port nothing listens on: dials are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	p, err := NewProxy([]string{a, dead, b})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// Four connections: a, (dead, so) b, b, a.
	for i, req := range []string{
		"GET /events?session=s1 HTTP/1.1\r\n\r\n",
		"GET /events?session=s1&x=1 HTTP/1.1\r\n\r\n",
		"POST /sessions/s1/chat HTTP/1.1\r\n\r\n",
		"GET /events?session=s1 HTTP/1.1\r\n\r\n",
	} {
		c, err := net.Dial("tcp", strings.TrimPrefix(p.URL(), "http://"))
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, req)
		got := make([]byte, len(req))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != req {
			t.Fatalf("connection %d: echo %q: %v", i, got, err)
		}
		c.Close()
	}
	want := []TargetStats{{Streams: 2}, {}, {Streams: 1, Requests: 1}}
	if got := p.Targets(); !slices.Equal(got, want) {
		t.Errorf("by target %+v, want %+v", got, want)
	}
	if got := p.Refused(); got != 1 {
		t.Errorf("%d refused, want 1", got)
	}
	// s1: a, then b (a move), then a (another).
	if got := p.Moves(); got != 2 {
		t.Errorf("%d moves, want 2", got)
	}
	if _, err := NewProxy(nil); err == nil {
		t.Error("a proxy with no target")
	}
}

// TestRewriteRetry: the retry field keeps its width, so chunked framing
// around it stays right; values that do not fit, and look-alikes inside
// data, are left alone.
func TestRewriteRetry(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"HTTP/1.1 200 OK\r\n\r\n1e\r\nretry: 2000\nid: 0\n", "HTTP/1.1 200 OK\r\n\r\n1e\r\nretry: 0050\nid: 0\n"},
		{"\nretry: 20\n", "\nretry: 50\n"},
		{"\nretry: 2\n", "\nretry: 2\n"},               // 50 does not fit in one digit
		{"data: retry: 2000\n", "data: retry: 2000\n"}, // not a field
		{"\nretry: 2000", "\nretry: 2000"},             // cut before its line end
		{"\nretry: 2000\n\nretry: 3000\n", "\nretry: 0050\n\nretry: 0050\n"},
	} {
		b := []byte(c.in)
		rewriteRetry(b, 50)
		if string(b) != c.want {
			t.Errorf("rewriteRetry(%q) = %q, want %q", c.in, b, c.want)
		}
	}
}
