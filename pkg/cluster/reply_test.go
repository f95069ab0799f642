package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/internal/soak"
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

// TestReplyLostWithItsBrokerSentAgain: a reply that node a sent, and that
// nats.go took, is lost when a's connection goes silent (or its broker is
// killed) before the broker passed it on. a notices only afterwards; once
// connected again it sends the reply again, rather than leave its asker
// waiting out the whole request timeout (a forwarded POST unanswered for
// 10 s holds up its client's stream).
func TestReplyLostWithItsBrokerSentAgain(t *testing.T) {
	br := clustertest.StartBroker(t)
	a, link := startLinkedNode(t, br, 300*time.Millisecond)
	sub, err := cluster.Listen(a.Node, "test.ask")
	if err != nil {
		t.Fatal(err)
	}
	asker, err := nats.Connect(br.URL())
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
	if n := link.CutAll(soak.CutStall); n != 1 {
		t.Fatalf("%d connections stalled, want a's one", n)
	}
	cluster.Respond(a.Node, m, []byte("answer")) // taken, and lost in the stall
	got, err := inbox.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("the reply lost with a's connection was not sent again: %v", err)
	}
	if string(got.Data) != "answer" {
		t.Fatalf("reply %q", got.Data)
	}
}

// startLinkedNode starts node a, which reaches broker br through link:
// link stalls a's connection on demand (nothing relayed, nobody told) and
// resets it after hold; a new connection gets through.
func startLinkedNode(t *testing.T, br *clustertest.Broker, hold time.Duration) (*clustertest.Node, *soak.Proxy) {
	t.Helper()
	link, err := soak.NewProxy([]string{strings.TrimPrefix(br.URL(), "nats://")}, soak.WithHold(hold))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() }) // after a's end: cleanups run last first
	a := clustertest.StartNodeWith(t, br, "a", func(c *cluster.Config) {
		c.URL = "nats://" + strings.TrimPrefix(link.URL(), "http://")
	})
	return a, link
}

// TestBrokerRequestEndsWithItsConnection: a record read sent into a
// connection that then dies gets no reply, ever. It fails as soon as the
// node notices the loss, not at the end of its context: a take waited so
// for 30 s, holding the session's lock on its node, and every stream and
// POST of that session through that node waited behind it.
func TestBrokerRequestEndsWithItsConnection(t *testing.T) {
	br := clustertest.StartBroker(t)
	a, link := startLinkedNode(t, br, 100*time.Millisecond)
	if n := link.CutAll(soak.CutStall); n != 1 {
		t.Fatalf("%d connections stalled, want a's one", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a take's
	defer cancel()
	err := cluster.ReadRecord(ctx, a.Node, "some-session")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("record read on a connection lost meanwhile: %v; want it ended with the connection", err)
	}
}
