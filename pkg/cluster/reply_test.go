package cluster_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/cluster"
)

// TestReplySentOnceTheBrokerIsBack: a node whose reply to another node's
// request fails because its broker connection is down (a forwarded POST
// that ran while the broker went) sends it once a broker is back, rather
// than leave its asker waiting out the whole request timeout for nothing.
func TestReplySentOnceTheBrokerIsBack(t *testing.T) {
	br := clustertest.StartBroker(t)
	a := clustertest.StartNode(t, br, "a")
	sub, err := cluster.Listen(a.Node, "test.ask")
	if err != nil {
		t.Fatal(err)
	}
	// The asker tries to reconnect all the time, so that it is back, and
	// listening for the reply, before node a (every 250 ms) sends it.
	asker, err := nats.Connect(br.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(time.Millisecond), nats.ReconnectJitter(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer asker.Close()
	inbox, err := asker.SubscribeSync("test.reply")
	if err != nil {
		t.Fatal(err)
	}
	if err := asker.PublishRequest("test.ask", "test.reply", []byte("ask")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(ssetest.Wait)
	if err != nil {
		t.Fatal(err)
	}
	br.Stop()
	ssetest.Eventually(t, "node a without a broker", func() bool { return !cluster.Connected(a.Node) })
	done := make(chan struct{})
	go func() {
		defer close(done)
		cluster.Respond(a.Node, m, []byte("answer"))
	}()
	time.Sleep(200 * time.Millisecond) // the first try fails meanwhile
	br.Start()
	got, err := inbox.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no reply after the broker came back: %v", err)
	}
	if string(got.Data) != "answer" {
		t.Fatalf("reply %q", got.Data)
	}
	<-done
}
