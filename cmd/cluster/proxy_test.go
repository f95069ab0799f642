package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// fakeNodes are loopback HTTP servers standing in for server processes:
// each names itself in nodeHeader and echoes the Host it was asked for;
// /stream writes one event, flushes, and holds the stream open until the
// client has read it (release) or the test ends.
func fakeNodes(t *testing.T, n int, release chan struct{}) []*node {
	var nodes []*node
	for k := 1; k <= n; k++ {
		name := fmt.Sprintf("node%d", k)
		mux := http.NewServeMux()
		mux.HandleFunc("/host", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(nodeHeader, name)
			io.WriteString(w, r.Host)
		})
		mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set(nodeHeader, name)
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "event: hello\ndata: 1\n\n")
			http.NewResponseController(w).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		nodes = append(nodes, &node{name: name, url: srv.URL, exited: make(chan struct{})})
	}
	return nodes
}

func serveProxy(t *testing.T, nodes []*node) (*proxy, string) {
	p, err := newProxy(nodes, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(func() { srv.Close(); p.close() })
	return p, srv.URL
}

// TestProxyRoundRobin: requests go to the live nodes in turn, a dead node
// is skipped, and the node sees the Host the client asked for.
func TestProxyRoundRobin(t *testing.T) {
	nodes := fakeNodes(t, 3, nil)
	_, base := serveProxy(t, nodes)
	cl := newClient(t)
	host := strings.TrimPrefix(base, "http://")

	var got []string
	for range 6 {
		status, node, body := cl.get(base + "/host")
		if status != http.StatusOK || body != host {
			t.Errorf("GET /host: %d, Host %q; want 200, %q", status, body, host)
		}
		got = append(got, node)
	}
	if want := "node1 node2 node3 node1 node2 node3"; strings.Join(got, " ") != want {
		t.Errorf("order %v, want %s", got, want)
	}

	close(nodes[1].exited) // node2 died
	got = got[:0]
	for range 4 {
		_, node, _ := cl.get(base + "/host")
		got = append(got, node)
	}
	if want := "node1 node3 node1 node3"; strings.Join(got, " ") != want {
		t.Errorf("order with node2 dead %v, want %s", got, want)
	}
}

// TestProxyNoNode: with every node dead the proxy answers 503 with a JSON
// error and Retry-After, as the servers themselves do when full.
func TestProxyNoNode(t *testing.T) {
	nodes := fakeNodes(t, 2, nil)
	for _, n := range nodes {
		close(n.exited)
	}
	_, base := serveProxy(t, nodes)
	resp, err := http.Get(base + "/host")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e protocol.Error
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Error == "" ||
		resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("no node: %s, Retry-After %q, body %+v (%v); want 503 with a JSON error and Retry-After",
			resp.Status, resp.Header.Get("Retry-After"), e, err)
	}
}

// TestProxyStreams: an event reaches the client while the node still holds
// the stream open: the proxy does not buffer SSE.
func TestProxyStreams(t *testing.T) {
	release := make(chan struct{})
	nodes := fakeNodes(t, 1, release)
	_, base := serveProxy(t, nodes)
	resp, err := http.Get(base + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		lines <- line
	}()
	select {
	case line := <-lines:
		if line != "event: hello\n" {
			t.Errorf("first line %q", line)
		}
	case <-time.After(wait):
		t.Error("the event did not come through while the stream was open")
	}
	close(release)
}
