package cluster_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/pkg/cluster"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// TestForwardedChatRunTwiceStoredOnce: a forwarded chat POST run again
// under the same request id (on the node that carried its session on,
// after the first node's reply was lost) is stored once: the second run
// gets the first one's chat id, not a second copy.
func TestForwardedChatRunTwiceStoredOnce(t *testing.T) {
	br := clustertest.StartBroker(t)
	a := clustertest.StartNode(t, br, "a")
	b := clustertest.StartNode(t, br, "b")
	msg := protocol.Chat{Name: "ann", Text: "once"}
	first, err := a.Node.PublishChat(cluster.WithForwarded(context.Background(), "req-1"), msg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.Node.PublishChat(cluster.WithForwarded(context.Background(), "req-1"), msg)
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Fatalf("the same request stored its chat as %d and %d", first, again)
	}
	other, err := b.Node.PublishChat(cluster.WithForwarded(context.Background(), "req-2"), msg)
	if err != nil {
		t.Fatal(err)
	}
	if other == first {
		t.Fatalf("another request's chat stored under the first one's id %d", first)
	}
}

// TestChatRunByItsAskerStoredOnce: a chat POST reaches a node that does not
// hold the session; its node does not answer, so the asker carries the
// session on and runs the chat itself. The old node may still have run the
// copy it was sent (cut off from the broker, it stores the chat once it is
// back): both runs must store under the request's id, so the chat is stored
// once.
func TestChatRunByItsAskerStoredOnce(t *testing.T) {
	br := clustertest.StartBroker(t)
	a := clustertest.StartNode(t, br, "a")
	b := clustertest.StartNode(t, br, "b")
	c := clustertest.StartNode(t, br, "c")
	id := newSession(t, b, "one")

	// The copy b would have run: what a sends on the session's subject.
	spy, err := nats.Connect(br.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Close()
	sent, err := spy.SubscribeSync(cluster.SessionSubject(b.Node, id))
	if err != nil {
		t.Fatal(err)
	}
	// The first copy only: then nobody answers, as when b is gone.
	if err := sent.AutoUnsubscribe(1); err != nil {
		t.Fatal(err)
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	b.Kill()

	var acc protocol.ChatAccepted
	if st, _ := post(t, a.URL+"/sessions/"+id+"/chat", protocol.ChatPost{Name: "ann", Text: "once"}, &acc); st != http.StatusAccepted {
		t.Fatalf("chat: %d", st)
	}
	m, err := sent.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("the forwarded chat: %v", err)
	}
	var req struct {
		ReqID string `json:"reqId"`
	}
	if err := json.Unmarshal(m.Data, &req); err != nil || req.ReqID == "" {
		t.Fatalf("forwarded request %s: %v", m.Data, err)
	}
	// The old node's run, late.
	again, err := c.Node.PublishChat(cluster.WithForwarded(context.Background(), req.ReqID), protocol.Chat{Name: "ann", Text: "once"})
	if err != nil {
		t.Fatal(err)
	}
	if again != acc.ID {
		t.Fatalf("the chat was stored as %d by the node that carried the session on, and again as %d by its copy", acc.ID, again)
	}
}
