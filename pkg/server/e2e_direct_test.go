package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A chat's fan-out writes a parked HTTP/1.1 stream itself, with a write
// that never blocks; a stream whose socket does not take it all is left to
// its own goroutine. These tests read such streams off their own TCP
// connections, through net/http's chunked reader, which fails on a broken
// chunk frame.

// A rawStream is GET /events of one session on a connection of its own.
type rawStream struct {
	conn net.Conn
	dec  *protocol.Decoder
	t    testing.TB
}

// dialStream opens sid's stream on a TCP connection whose receive buffer
// is rcvbuf bytes (0: the system's), so that a stream the test does not
// read fills the server's socket after a few kilobytes.
func dialStream(t testing.TB, h *harness, sid string, rcvbuf int) *rawStream {
	t.Helper()
	d := net.Dialer{Timeout: ssetest.Wait}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	conn, err := d.Dial("tcp", h.srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(4 * ssetest.Wait))
	fmt.Fprintf(conn, "GET /events?session=%s HTTP/1.1\r\nHost: %s\r\n\r\n", sid, h.srv.Addr)
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 1024), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || len(resp.TransferEncoding) != 1 {
		t.Fatalf("GET /events: %d, transfer encoding %q", resp.StatusCode, resp.TransferEncoding)
	}
	return &rawStream{conn: conn, dec: protocol.NewDecoder(resp.Body, 0), t: t}
}

// untilChat reads the stream until chat message last and returns every
// event read (comments are not events).
func (r *rawStream) untilChat(last int64) ([]protocol.Message, error) {
	var got []protocol.Message
	for {
		m, err := r.dec.Next()
		if err != nil {
			return got, fmt.Errorf("after %d events: %w", len(got), err)
		}
		got = append(got, m)
		if m.Name == protocol.EventChat {
			var c protocol.Chat
			if err := json.Unmarshal([]byte(m.Data), &c); err != nil {
				return got, err
			}
			if c.ID == last {
				return got, nil
			}
		}
	}
}

// checkDirectStream checks a stream's events: the session event, then ids
// without a hole or a repeat, and chats 1 to last each once, in order.
func checkDirectStream(t *testing.T, ms []protocol.Message, last int64) {
	t.Helper()
	if len(ms) == 0 || ms[0].Name != protocol.EventSession {
		t.Fatalf("stream does not start with the session event")
	}
	ssetest.Consecutive(t, ssetest.ID(t, ms[0]), ms)
	next := int64(1)
	for _, m := range ms {
		if m.Name != protocol.EventChat {
			continue
		}
		c := ssetest.Decode[protocol.Chat](t, m)
		if c.ID != next {
			t.Fatalf("chat %d arrived where %d was due", c.ID, next)
		}
		next++
	}
	if next != last+1 {
		t.Fatalf("stream ended at chat %d, want %d", next-1, last)
	}
}

// TestDirectChatWrites: chats written by the fan-out, on streams whose
// ticks the flush wheel and their own goroutines write between them,
// arrive on every stream in order, each once, with ids that run on without
// a hole, in well-framed chunks.
func TestDirectChatWrites(t *testing.T) {
	h := start(t, broadcast.WithChatRate(10_000, 10_000))
	const readers, chats = 3, 200
	all := []string{}
	for _, c := range broadcast.DefaultChannels() {
		all = append(all, c.Name)
	}
	type result struct {
		ms  []protocol.Message
		err error
	}
	results := make(chan result, readers)
	for range readers {
		r := dialStream(t, h, h.newSession(t, all...), 0)
		go func() {
			ms, err := r.untilChat(chats)
			results <- result{ms, err}
		}()
	}
	sender := h.newSession(t)
	before := h.srv.Hub.Snapshot()
	for i := range chats {
		h.chat(t, sender, "me", fmt.Sprint("message ", i))
	}
	for range readers {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		checkDirectStream(t, r.ms, chats)
	}
	after := h.srv.Hub.Snapshot()
	if after.DirectWrites == before.DirectWrites {
		t.Fatalf("no stream was written by a chat's fan-out (%d chats to %d streams)", chats, readers)
	}
	t.Logf("%d direct writes (fan-out and wheel) for %d chats to %d streams, %d handed to the stream",
		after.DirectWrites-before.DirectWrites, chats, readers, after.DirectHandoffs-before.DirectHandoffs)
}

// TestDirectChatHandoff: a client that stops reading fills its socket, so
// that a fan-out's write goes out only in part; the stream's goroutine
// sends the rest, and what came after it, once the client reads again.
// Nothing is lost, repeated or reordered, and every chunk is whole.
func TestDirectChatHandoff(t *testing.T) {
	h := start(t, broadcast.WithChatRate(10_000, 10_000), broadcast.WithMaxChatText(2000),
		broadcast.WithWriteTimeout(time.Minute))
	r := dialStream(t, h, h.newSession(t), 4096)
	sender := h.newSession(t)
	text := strings.Repeat("x", 1500)
	before := h.srv.Hub.Snapshot()
	// A few hundred kilobytes at most fill the socket; then a few more
	// chats, which find the stream's goroutine busy with the rest.
	last, extra := int64(0), 0
	for i := 0; i < 1000 && extra < 20; i++ {
		last = h.chat(t, sender, "me", text)
		if h.srv.Hub.Snapshot().DirectHandoffs > before.DirectHandoffs {
			extra++
		}
	}
	if extra == 0 {
		t.Fatalf("%d chats of %d bytes to a stream that is not read: no fan-out write went out in part", last, len(text))
	}
	ms, err := r.untilChat(last)
	if err != nil {
		t.Fatal(err)
	}
	checkDirectStream(t, ms, last)
}

// TestDirectChatStuckReader: a client that never reads holds its stream's
// goroutine in a write (for up to the write timeout, a minute here), and
// the chats after it still reach another stream, and their POSTs are
// answered: the fan-out never waits for a socket.
func TestDirectChatStuckReader(t *testing.T) {
	h := start(t, broadcast.WithChatRate(10_000, 10_000), broadcast.WithMaxChatText(2000),
		broadcast.WithWriteTimeout(time.Minute))
	stuck := dialStream(t, h, h.newSession(t), 4096)
	_ = stuck // never read
	sender := h.newSession(t)
	text := strings.Repeat("y", 1500)
	before := h.srv.Hub.Snapshot()
	last := int64(0)
	for i := 0; i < 1000 && h.srv.Hub.Snapshot().DirectHandoffs == before.DirectHandoffs; i++ {
		last = h.chat(t, sender, "me", text)
	}
	if h.srv.Hub.Snapshot().DirectHandoffs == before.DirectHandoffs {
		t.Fatalf("%d chats to a stream that is not read: its socket never filled", last)
	}
	reader := dialStream(t, h, h.newSession(t), 0)
	ctx, cancel := context.WithTimeout(context.Background(), ssetest.Wait)
	defer cancel()
	reader.conn.SetReadDeadline(time.Now().Add(ssetest.Wait))
	first := last + 1
	for i := range 50 {
		last = h.chat(t, sender, "me", fmt.Sprint("after ", i))
		if ctx.Err() != nil {
			t.Fatalf("chat %d: the fan-out waited for a stream that does not read", last)
		}
	}
	ms, err := reader.untilChat(last)
	if err != nil {
		t.Fatalf("the stream that reads, while another does not: %v", err)
	}
	n := 0
	for _, m := range ms {
		if m.Name == protocol.EventChat {
			if c := ssetest.Decode[protocol.Chat](t, m); c.ID >= first {
				n++
			}
		}
	}
	if n != 50 {
		t.Fatalf("the reading stream got %d of the 50 chats sent after the other stream stuck", n)
	}
}

// TestDirectWheelWrites: ticks whose flush the wheel writes itself, and
// those the stream's goroutine writes (the first after a quiet spell), run
// on without a hole on the wire.
func TestDirectWheelWrites(t *testing.T) {
	h := start(t, broadcast.WithFlushInterval(20*time.Millisecond))
	all := []string{}
	for _, c := range broadcast.DefaultChannels() {
		all = append(all, c.Name)
	}
	r := dialStream(t, h, h.newSession(t, all...), 0)
	before := h.srv.Hub.Snapshot()
	var ms []protocol.Message
	for len(ms) < 1000 {
		m, err := r.dec.Next()
		if err != nil {
			t.Fatalf("after %d events: %v", len(ms), err)
		}
		ms = append(ms, m)
	}
	ssetest.Consecutive(t, ssetest.ID(t, ms[0]), ms)
	if h.srv.Hub.Snapshot().DirectWrites == before.DirectWrites {
		t.Fatal("the flush wheel wrote none of 1000 ticks itself")
	}
}
