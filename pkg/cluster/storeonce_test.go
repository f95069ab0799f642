package cluster_test

import (
	"context"
	"testing"

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
