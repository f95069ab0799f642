package cluster_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
	"github.com/xhrsse/xhrsse/pkg/server"
)

const pubToken = "cluster-publish-token"

// startPublishNode starts a node with the published channel "log".
func startPublishNode(t *testing.T, b *clustertest.Broker, name string) *clustertest.Node {
	t.Helper()
	chans := append(broadcast.DefaultChannelsAt(clustertest.ChannelRate),
		broadcast.ChannelConfig{Name: "log", Title: "Log", Published: true})
	return clustertest.StartNodeServer(t, b, name, nil,
		server.Config{PublishTokens: []string{pubToken}, PublishRate: 1e6},
		broadcast.WithChannels(chans...))
}

// publishText publishes body as a text body to channel log on n and returns
// the status and the events the answer counts.
func publishText(t *testing.T, n *clustertest.Node, body string) (int, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.URL+"/channels/log/events", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+pubToken)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, 0
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var ans protocol.PublishAnswer
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &ans); err != nil {
			t.Errorf("answer %q: %v", raw, err)
		}
	}
	return resp.StatusCode, ans.Events
}

// logs reads n published events from s, skipping the rest.
func logs(t *testing.T, s *stream, n int) []protocol.Message {
	t.Helper()
	var got []protocol.Message
	for len(got) < n {
		m := s.next(t)
		switch m.Name {
		case "log":
			got = append(got, m)
		case protocol.EventGap:
			t.Fatalf("gap after %d published events: %s", len(got), m.Data)
		}
	}
	return got
}

// Publishes to any node reach the tuned sessions on every node, in one
// order: the broker's.
func TestPublishReachesEveryNode(t *testing.T) {
	b := clustertest.StartBroker(t)
	nodes := []*clustertest.Node{startPublishNode(t, b, "a"), startPublishNode(t, b, "b")}
	var streams []*stream
	for _, n := range nodes {
		streams = append(streams, openStream(t, n, newSession(t, n, "log"), ""))
	}
	untuned := openStream(t, nodes[1], newSession(t, nodes[1], "one"), "")

	// Two publishers at once, one on each node.
	const lines = 100
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body strings.Builder
			for i := range lines {
				fmt.Fprintf(&body, "%s %d\n", n.Name(), i)
			}
			if st, events := publishText(t, n, body.String()); st != http.StatusOK || events != lines {
				t.Errorf("publish on %s: %d, %d events", n.Name(), st, events)
			}
		}()
	}
	wg.Wait()

	var order []string
	for i, s := range streams {
		got := logs(t, s, 2*lines)
		next := map[string]int{}
		for j, m := range got {
			node, num, _ := strings.Cut(m.Data, " ")
			if num != strconv.Itoa(next[node]) {
				t.Fatalf("stream on %s: %q where %s %d was due", nodes[i].Name(), m.Data, node, next[node])
			}
			next[node]++
			if i == 0 {
				order = append(order, m.Data)
			} else if order[j] != m.Data {
				t.Fatalf("stream on %s: event %d is %q, on a it is %q: not one order", nodes[i].Name(), j, m.Data, order[j])
			}
		}
	}
	// A JSON publish, and the session not tuned to log had none of them.
	if st, _ := post(t, nodes[0].URL+"/channels/log/events", protocol.PublishPost{Data: "json"}, nil); st != http.StatusUnauthorized {
		t.Fatalf("publish without a token: %d", st)
	}
	chat := newSession(t, nodes[1])
	if st, _ := post(t, nodes[1].URL+"/sessions/"+chat+"/chat", protocol.ChatPost{Text: "mark"}, nil); st != http.StatusAccepted {
		t.Fatalf("chat: %d", st)
	}
	for _, m := range untuned.until(t, chatText("mark")) {
		if m.Name == "log" {
			t.Fatalf("a session not tuned to log got %q", m.Data)
		}
	}
	if got := metric(t, nodes[0], `xhrsse_published_events_total{channel="log"}`); got != 2*lines {
		t.Fatalf("node a delivered %v published events, want %d", got, 2*lines)
	}
}

// A session that moves between nodes gets every published event once; one
// whose node died goes on elsewhere after a gap, and publishing goes on.
func TestPublishAcrossMovesAndNodeLoss(t *testing.T) {
	b := clustertest.StartBroker(t)
	a, bn := startPublishNode(t, b, "a"), startPublishNode(t, b, "b")
	id := newSession(t, a, "log")
	s := openStream(t, a, id, "")
	if st, n := publishText(t, bn, "one\ntwo\n"); st != http.StatusOK || n != 2 {
		t.Fatalf("publish: %d %d", st, n)
	}
	evs := s.until(t, func(m protocol.Message) bool { return m.Data == "two" })
	last := ids(t, 0, evs)
	s.Close()

	// While the client is away, more is published (through both nodes).
	if st, n := publishText(t, a, "three\n"); st != http.StatusOK || n != 1 {
		t.Fatalf("publish: %d %d", st, n)
	}
	if st, n := publishText(t, bn, "four\n"); st != http.StatusOK || n != 1 {
		t.Fatalf("publish: %d %d", st, n)
	}
	ssetest.Eventually(t, "a delivered four", func() error {
		if a.Hub.Snapshot().Published["log"] < 4 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	// The client comes back on b: the session moves, with what it missed,
	// and nothing twice.
	s2 := openStream(t, bn, id, strconv.FormatUint(last, 10))
	if m := s2.next(t); m.Name != protocol.EventSession || s2.node != "b" {
		t.Fatalf("resume on b: %+v from %q", m, s2.node)
	}
	if st, n := publishText(t, a, "five\n"); st != http.StatusOK || n != 1 {
		t.Fatalf("publish: %d %d", st, n)
	}
	got := logs(t, s2, 3)
	for i, want := range []string{"three", "four", "five"} {
		if got[i].Data != want {
			t.Fatalf("after the move: event %d is %q, want %q", i, got[i].Data, want)
		}
	}

	// Node loss: a session on a, a killed; publishing through b goes on,
	// and the session resumes on b after a gap, tuned as before.
	id2 := newSession(t, a, "log")
	s3 := openStream(t, a, id2, "")
	if st, n := publishText(t, bn, "before the loss\n"); st != http.StatusOK || n != 1 {
		t.Fatalf("publish: %d %d", st, n)
	}
	evs = s3.until(t, func(m protocol.Message) bool { return m.Data == "before the loss" })
	last = ids(t, 0, evs)
	a.Kill()
	<-s3.Done() // until the cut
	if st, n := publishText(t, bn, "after the loss\n"); st != http.StatusOK || n != 1 {
		t.Fatalf("publish after the loss: %d %d", st, n)
	}
	if m := logs(t, s2, 2); m[0].Data != "before the loss" || m[1].Data != "after the loss" {
		t.Fatalf("the session on b got %q, %q", m[0].Data, m[1].Data)
	}
	s4 := openStream(t, bn, id2, strconv.FormatUint(last, 10))
	if m := s4.next(t); m.Name != protocol.EventSession {
		t.Fatalf("first event %s", m.Name)
	}
	if m := s4.next(t); m.Name != protocol.EventGap {
		t.Fatalf("after a lost node: %+v, want a gap", m)
	}
	if st, n := publishText(t, bn, "recovered\n"); st != http.StatusOK || n != 1 {
		t.Fatalf("publish: %d %d", st, n)
	}
	if m := logs(t, s4, 1); m[0].Data != "recovered" {
		t.Fatalf("the recovered session got %q", m[0].Data)
	}
}
