package server_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"

	"github.com/xhrsse/xhrsse/internal/testserver"
)

// TestHTTP2StreamAndPostsShareAConnection: over TLS the stream and the POSTs
// go as HTTP/2 streams of one connection, so a browser's 6-connections-per-
// host limit of HTTP/1.1 no longer caps open tabs.
func TestHTTP2StreamAndPostsShareAConnection(t *testing.T) {
	srv := testserver.StartTLS(t, testserver.Config{})
	c := srv.Client()
	defer c.CloseIdleConnections()
	resp, err := c.Post(srv.URL+"/sessions", "application/json", strings.NewReader(`{"channels":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /sessions: %s %d, want HTTP/2 201", resp.Proto, resp.StatusCode)
	}
	stream, err := c.Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if stream.ProtoMajor != 2 {
		t.Fatalf("stream over %s, want HTTP/2", stream.Proto)
	}
	r := bufio.NewReader(stream.Body)
	var session string
	for session == "" {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if rest, ok := strings.CutPrefix(line, `data: {"session":"`); ok {
			session, _, _ = strings.Cut(rest, `"`)
		}
	}
	// The chat POST reuses the stream's connection while the stream is open.
	var reused bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodPost,
		srv.URL+"/sessions/"+session+"/chat", strings.NewReader(`{"name":"h2","text":"over one connection"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if !reused {
		t.Error("the chat POST opened a new connection")
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("chat: %d", resp.StatusCode)
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, "over one connection") {
			return
		}
	}
}
