package proxytest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptrace"
	"sync"
	"testing"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/client"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A connRecorder is a RoundTripper that notes the protocol of every answer
// and the connection every request went over.
type connRecorder struct {
	protoRecorder
	mu    sync.Mutex
	conns map[string]int // local address of the connection -> requests
}

func (c *connRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.conns == nil {
			c.conns = make(map[string]int)
		}
		c.conns[info.Conn.LocalAddr().String()]++
	}}
	return c.protoRecorder.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
}

// TestGoClientOverHTTP2 runs pkg/client against an HTTPS server with the
// client testserver gives for it: the stream, tuning, chat and a 5 MiB bulk
// transfer all work, every answer comes over HTTP/2, and all of it shares
// one connection, as a browser's tabs would.
func TestGoClientOverHTTP2(t *testing.T) {
	t.Parallel()
	srv := testserver.StartTLS(t, testserver.Config{}, channelsAt(t, 40, 40, 40))
	base := srv.Client()
	t.Cleanup(base.CloseIdleConnections)
	rec := &connRecorder{protoRecorder: protoRecorder{base: base.Transport}}
	c := newClient(t, srv.URL, &http.Client{Transport: rec})
	ctx, cancel := context.WithTimeout(context.Background(), ssetest.Wait)
	defer cancel()

	s, err := c.Open(ctx, "one")
	if err != nil {
		t.Fatal(err)
	}
	r := startRun(t, s)
	i, _ := r.wait(t, 0, ssetest.Wait, "a tick of one", isTick("one"))
	if _, err := s.Tune(ctx, "two", true); err != nil {
		t.Fatal(err)
	}
	i, _ = r.wait(t, i, ssetest.Wait, "a tick of two", isTick("two"))
	if _, err := s.Chat(ctx, "h2", "one connection"); err != nil {
		t.Fatal(err)
	}
	r.wait(t, i, ssetest.Wait, "the chat", func(ev client.Event) bool {
		return ev.Kind == client.Chat && ev.Chat.Text == "one connection"
	})
	n := int64(5 << 20)
	h := sha256.New()
	tr, err := s.Bulk(ctx, protocol.BulkPost{Bytes: &n}, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != tr.Accepted().SHA256 {
		t.Errorf("received sha256 %s, announced %s", got, tr.Accepted().SHA256)
	}
	if err := r.stop(); err != nil {
		t.Errorf("Run: %v", err)
	}

	for proto, n := range rec.protos() {
		if proto != "HTTP/2.0" {
			t.Errorf("%d answers over %s, want HTTP/2.0 only", n, proto)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.conns) != 1 {
		t.Errorf("requests went over %d connections (%v), want one", len(rec.conns), rec.conns)
	}
}
