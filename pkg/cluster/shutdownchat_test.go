package cluster_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A chat POST answered 503 was not sent (PROTOCOL.md "Clusters"; the one
// exception in SCALING.md is a broker lost between storing the message and
// acknowledging it). That holds for a chat of a session whose node is
// shutting down too: forwarded there during the hand-over time, it is
// either refused before it goes out or answered 202. Found by the cluster
// soak (TestSoakClusterNodeShutdown: "chat … arrived, though its POST was
// answered 503").
func TestChatOnANodeShuttingDownIsNotRefusedAfterItWasSent(t *testing.T) {
	b := clustertest.StartBroker(t)
	a, bn := clustertest.StartNode(t, b, "a"), clustertest.StartNode(t, b, "b")
	onA := newSession(t, a) // never streams: it stays on a while a hands over
	watch := newSession(t, bn)
	s := openStream(t, bn, watch, "")

	left, done := make(chan int, 1), make(chan struct{})
	go func() {
		defer close(done)
		left <- a.Shutdown(10 * time.Second)
	}()
	t.Cleanup(func() { <-done }) // before the nodes' cleanups
	ssetest.Eventually(t, "a closing", func() error {
		select {
		case <-a.Hub.Done():
			return nil
		default:
			return fmt.Errorf("a's hub still open")
		}
	})

	refused := map[string]int{}
	for i := range 10 {
		text := fmt.Sprintf("during the hand-over %d", i)
		st, _ := post(t, bn.URL+"/sessions/"+onA+"/chat", protocol.ChatPost{Text: text}, nil)
		switch st {
		case http.StatusAccepted:
		case http.StatusServiceUnavailable:
			refused[text] = st
		default:
			t.Fatalf("chat via b for a session on a shutting down: %d", st)
		}
	}
	if st, _ := post(t, bn.URL+"/sessions/"+watch+"/chat", protocol.ChatPost{Text: "marker"}, nil); st != http.StatusAccepted {
		t.Fatalf("marker chat: %d", st)
	}
	var delivered []string
	for _, m := range s.until(t, chatText("marker")) {
		var c protocol.Chat
		if m.Name == protocol.EventChat && json.Unmarshal([]byte(m.Data), &c) == nil && refused[c.Text] != 0 {
			delivered = append(delivered, c.Text)
		}
	}
	if len(delivered) > 0 {
		t.Errorf("%d of %d chats answered 503 were delivered all the same: %q", len(delivered), len(refused), delivered)
	}
	// Let a's hand-over end: take its session.
	openStream(t, bn, onA, "0").until(t, ssetest.Named(protocol.EventSession))
	if n := <-left; n != 0 {
		t.Errorf("%d sessions left on a", n)
	}
}
