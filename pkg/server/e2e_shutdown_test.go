package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// TestShutdownSendsBye: closing the server the way SIGTERM does ends every
// open stream with bye "shutdown", and a POST already being served completes.
func TestShutdownSendsBye(t *testing.T) {
	h := start(t)
	var streams [3]*ssetest.Stream
	sids := make([]string, len(streams))
	for i := range streams {
		sids[i] = h.newSession(t, "one")
		streams[i] = h.events(t, sids[i])
		streams[i].Expect(t, protocol.EventSession)
		streams[i].Expect(t, "one")
	}

	// An in-flight POST: the server has its headers and has asked for the
	// body (100 Continue), so its handler is running when shutdown starts.
	conn, err := net.DialTimeout("tcp", h.srv.Addr, ssetest.Wait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * ssetest.Wait))
	body := `{"name":"ann","text":"last words"}`
	fmt.Fprintf(conn, "POST /sessions/%s/chat HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n",
		sids[0], h.srv.Addr, len(body))
	br := bufio.NewReader(conn)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "100 Continue") {
		t.Fatalf("want 100 Continue, got %q %v", line, err)
	}
	if line, err := br.ReadString('\n'); err != nil || line != "\r\n" {
		t.Fatalf("after 100 Continue: %q %v", line, err)
	}

	closed := make(chan struct{})
	go func() {
		defer close(closed)
		h.srv.Close()
	}()
	for i, s := range streams {
		bye, _ := s.ExpectBye(t, protocol.ByeShutdown)
		if ssetest.ID(t, bye) == 0 {
			t.Errorf("stream %d: bye at position 0 after receiving ticks", i)
		}
	}

	if _, err := conn.Write([]byte(body)); err != nil {
		t.Fatalf("send the body: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("in-flight POST: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("in-flight POST: %d, want 202", resp.StatusCode)
	}
	select {
	case <-closed:
	case <-time.After(ssetest.Wait):
		t.Fatal("Close did not return")
	}
	if c, err := net.DialTimeout("tcp", h.srv.Addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the server still accepts connections after Close")
	}
}

// TestStuckReader: a client that stops reading its stream, with a transfer
// and fast ticks queued for it, does not hold back anyone else.
func TestStuckReader(t *testing.T) {
	h := start(t, broadcast.WithChannels(fastChannels(200)...), broadcast.WithChatRate(100, 50))

	// The stuck client: a raw connection that asks for its stream and never
	// reads a byte, with a small receive buffer so the server's writes block.
	stuck := h.newSession(t, "one", "two", "three")
	// Closed before the server (cleanups run last first), so its stream's
	// blocked write fails at once instead of waiting for the write timeout.
	ssetest.StuckReader(t, h.srv.Addr, "/events?session="+stuck)
	ssetest.Eventually(t, "the stuck stream to open", func() bool { return h.srv.Hub.StreamCount() == 1 })
	acc := h.bulk(t, stuck, fmt.Sprintf(`{"bytes":%d}`, 20<<20))

	// Three readers, tuned to everything too.
	var readers [3]*ssetest.Stream
	var sids [3]string
	for i := range readers {
		sids[i] = h.newSession(t, "one", "two", "three")
		readers[i] = h.events(t, sids[i])
		readers[i].Expect(t, protocol.EventSession)
	}
	const bound = 2 * time.Second // correctness bound, not a performance claim
	for n := range 20 {
		posted := time.Now()
		id := h.chat(t, sids[n%len(sids)], "ann", fmt.Sprint("chat ", n))
		for i, r := range readers {
			var at time.Time
			for {
				a, err := r.Recv(ssetest.Wait)
				if err != nil {
					t.Fatalf("reader %d, waiting for chat %d: %v", i, id, err)
				}
				if a.Name == protocol.EventChat && ssetest.Decode[protocol.Chat](t, a.Message).ID == id {
					at = a.At
					break
				}
			}
			if d := at.Sub(posted); d > bound {
				t.Fatalf("reader %d got chat %d %v after it was posted; bound %v", i, id, d, bound)
			}
		}
	}

	r := h.get(t, "/metrics")
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), "xhrsse_streams 4") {
		t.Fatalf("GET /metrics while a reader is stuck: %d, streams line missing", r.Status)
	}
	snap := h.srv.Hub.Snapshot()
	if snap.Streams != 4 {
		t.Fatalf("%d streams open, want 4 (3 readers and the stuck one)", snap.Streams)
	}
	// The premise: the stuck stream really is stuck, its transfer unfinished.
	if snap.BulkDone != 0 || snap.BulkChunks >= int64(acc.Chunks) {
		t.Fatalf("the stuck reader's transfer progressed to %d of %d chunks (done %d): it was not stuck", snap.BulkChunks, acc.Chunks, snap.BulkDone)
	}
}

// TestWriteTimeout: a stream whose writes block longer than the write timeout
// is ended, and its session can be streamed again.
func TestWriteTimeout(t *testing.T) {
	h := start(t, broadcast.WithWriteTimeout(300*time.Millisecond))
	sid := h.newSession(t, "one")
	stuck := ssetest.StuckReader(t, h.srv.Addr, "/events?session="+sid)
	ssetest.Eventually(t, "the stream to open", func() bool { return h.srv.Hub.StreamCount() == 1 })
	h.bulk(t, sid, fmt.Sprintf(`{"bytes":%d}`, 20<<20))
	ssetest.Eventually(t, "the blocked stream to end", func() bool { return h.srv.Hub.StreamCount() == 0 })

	// Its body broke off mid-write: the server closes the connection
	// rather than keep it for another request (or block on it).
	stuck.SetReadDeadline(time.Now().Add(ssetest.Wait))
	if _, err := io.Copy(io.Discard, stuck); err != nil {
		t.Fatalf("the timed-out stream's connection, read to its end: %v; want it closed", err)
	}

	s := h.events(t, sid)
	s.Expect(t, protocol.EventSession)
	// The transfer goes on where it was.
	s.Until(t, "a bulk chunk", func(m protocol.Message) bool { return m.Name == protocol.EventBulk })
}
