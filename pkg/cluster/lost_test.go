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

// Messages lost with a broker connection: a reply, a request, a question
// to a node. Each test stalls one node's connection (soak.Proxy), as a
// broker killed or a partition TCP does not notice leaves it.

// TestReplyLostWithItsBrokerSentAgain: a reply that node a sent, and that
// nats.go took, is lost when a's connection goes silent (or its broker is
// killed) before the broker passed it on. a notices only afterwards; once
// connected again it sends the reply again, rather than leave its asker
// waiting out the whole request timeout (a forwarded POST unanswered for
// 10 s holds up its client's stream).
func TestReplyLostWithItsBrokerSentAgain(t *testing.T) {
	br := clustertest.StartBroker(t)
	a, link := startLinkedNode(t, br, "a", 300*time.Millisecond, nil)
	m, inbox := askedNode(t, br, a)
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

// startLinkedNode starts node name, which reaches broker br through link:
// link stalls the node's connection on demand (nothing relayed, nobody
// told) and resets it after hold; a new connection gets through. with, if
// not nil, changes the node's config.
func startLinkedNode(t *testing.T, br *clustertest.Broker, name string, hold time.Duration, with func(*cluster.Config)) (*clustertest.Node, *soak.Proxy) {
	t.Helper()
	link, err := soak.NewProxy([]string{strings.TrimPrefix(br.URL(), "nats://")}, soak.WithHold(hold))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() }) // after a's end: cleanups run last first
	n := clustertest.StartNodeWith(t, br, name, func(c *cluster.Config) {
		if with != nil {
			with(c)
		}
		c.URL = "nats://" + strings.TrimPrefix(link.URL(), "http://")
	})
	return n, link
}

// TestBrokerRequestEndsWithItsConnection: a record read sent into a
// connection that then dies gets no reply, ever. It fails as soon as the
// node notices the loss, not at the end of its context: a take waited so
// for 30 s, holding the session's lock on its node, and every stream and
// POST of that session through that node waited behind it.
func TestBrokerRequestEndsWithItsConnection(t *testing.T) {
	br := clustertest.StartBroker(t)
	a, link := startLinkedNode(t, br, "a", 100*time.Millisecond, nil)
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

// TestNodeQueryLostIsAskedAgain: before recovering a session, a node asks
// the session's node whether it still holds it. A question lost on the
// way (here in the answering node's stalled connection; in a broker
// killed while it held it) is asked again, and the answer, once the node
// is connected again, is that it holds the session: not an error after the
// whole request timeout, while the asking take held the session's lock.
func TestNodeQueryLostIsAskedAgain(t *testing.T) {
	br := clustertest.StartBroker(t)
	// b parks nothing in the moment it is away (its Claim is long).
	b, link := startLinkedNode(t, br, "b", 300*time.Millisecond, func(c *cluster.Config) { c.Claim = 2 * time.Second })
	a := clustertest.StartNode(t, br, "a")
	id := newSession(t, b)
	if n := link.CutAll(soak.CutStall); n != 1 {
		t.Fatalf("%d connections stalled, want b's one", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second) // less than the request timeout
	defer cancel()
	where, err := cluster.AskNode(ctx, a.Node, "b", id)
	if err != nil || where != "held" {
		t.Fatalf("b, asked while its connection was lost, answers %q, %v; want held", where, err)
	}
}

// askedNode sends a request to node a from a client connected to br
// directly, and returns it as a received it, with the client's inbox for
// the reply. The client's connection closes with the test.
func askedNode(t *testing.T, br *clustertest.Broker, a *clustertest.Node) (*nats.Msg, *nats.Subscription) {
	t.Helper()
	sub, err := cluster.Listen(a.Node, "test.ask")
	if err != nil {
		t.Fatal(err)
	}
	asker, err := nats.Connect(br.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(asker.Close)
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
	return m, inbox
}
