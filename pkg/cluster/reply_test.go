package cluster_test

import (
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/cluster"
)

// TestReplySentOnceTheBrokerIsBack: a node whose reply to another node's
// request fails because its broker connection is down (a forwarded POST
// that ran while the broker went) sends it once a broker is back, rather
// than leave its asker waiting out the whole request timeout for nothing.
// Node a loses its connection (link down) while the asker, connected to
// the broker directly, keeps listening for the reply.
func TestReplySentOnceTheBrokerIsBack(t *testing.T) {
	br := clustertest.StartBroker(t)
	// A Claim long enough that a does not park its sessions while down: a
	// reply made before a park is not sent again (TestReplyMadeBeforeAParkIsNotSentAgain).
	a, link := startLinkedNode(t, br, "a", time.Second, func(c *cluster.Config) { c.Claim = 10 * time.Second })
	m, inbox := askedNode(t, br, a)
	link.Down()
	ssetest.Eventually(t, "node a without a broker", func() bool { return !cluster.Connected(a.Node) })
	done := make(chan struct{})
	go func() {
		defer close(done)
		cluster.Respond(a.Node, m, []byte("answer"))
	}()
	time.Sleep(200 * time.Millisecond) // the first try fails meanwhile
	if err := link.Up(); err != nil {
		t.Fatal(err)
	}
	got, err := inbox.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no reply after the broker came back: %v", err)
	}
	if string(got.Data) != "answer" {
		t.Fatalf("reply %q", got.Data)
	}
	<-done
}
