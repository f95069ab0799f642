package cluster_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/internal/soak"
	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/cluster"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// startPartitionable starts a broker and two nodes on it: a, and c, which
// reaches the broker through link (link.Down cuts it off).
func startPartitionable(t *testing.T) (br *clustertest.Broker, link *soak.Proxy, a, c *clustertest.Node) {
	t.Helper()
	br = clustertest.StartBroker(t)
	link = soak.StartProxy(t, []string{strings.TrimPrefix(br.URL(), "nats://")})
	a = clustertest.StartNode(t, br, "a")
	c = clustertest.StartNodeWith(t, br, "c", func(cfg *cluster.Config) {
		cfg.URL = "nats://" + strings.TrimPrefix(link.URL(), "http://")
	})
	return br, link, a, c
}

// A node cut off from the broker while its clients still reach it parks its
// sessions: their streams end with bye "shutdown". A session whose client
// comes back through another node meanwhile is recovered there (after a
// gap); once the node reaches the broker again, it lets that one go and
// brings the other home, which resumes on it without a gap. Never is one
// session on two nodes.
func TestPartitionedNodeParksAndSettles(t *testing.T) {
	_, link, a, c := startPartitionable(t)
	moving, staying := newSession(t, c, "one"), newSession(t, c, "one")
	sm, ss := openStream(t, c, moving, ""), openStream(t, c, staying, "")
	firstM, firstS := sm.until(t, ssetest.Named("one")), ss.until(t, ssetest.Named("one"))

	link.Down()
	endM, endS := sm.until(t, ssetest.Named(protocol.EventBye)), ss.until(t, ssetest.Named(protocol.EventBye))
	if bye := endM[len(endM)-1]; bye.Data != `{"reason":"shutdown"}` {
		t.Fatalf("parked stream ended with %s, want bye shutdown (a client gives up on replaced)", bye.Data)
	}
	lastM := ids(t, 0, append(firstM, endM...))
	lastS := ids(t, 0, append(firstS, endS...))
	for _, id := range []string{moving, staying} {
		if _, ok := c.Hub.Session(id); ok {
			t.Fatal("a parked session is still on the cut-off node")
		}
	}
	// One client comes back through a: a recovers its session, after a gap.
	back := openStream(t, a, moving, strconv.FormatUint(lastM, 10))
	if m := back.next(t); m.Name != protocol.EventSession {
		t.Fatalf("first event on a: %s", m.Name)
	}
	if m := back.next(t); m.Name != protocol.EventGap {
		t.Fatalf("after a recovery: %s %s, want a gap", m.Name, m.Data)
	}

	if err := link.Up(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, homeOnC := c.Hub.Session(staying)
		_, movedOnC := c.Hub.Session(moving)
		_, movedOnA := a.Hub.Session(moving)
		if homeOnC && !movedOnC && movedOnA {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the partition: staying on c %v; moving on c %v, on a %v", homeOnC, movedOnC, movedOnA)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The session that stayed resumes on c where its stream ended: no gap.
	again := openStream(t, c, staying, strconv.FormatUint(lastS, 10))
	evs := []protocol.Message{again.next(t), again.next(t), again.next(t)}
	ids(t, lastS, evs)
	for _, m := range evs {
		if m.Name == protocol.EventGap {
			t.Fatal("a gap after the partition for a session nobody else took")
		}
	}
	if n := metric(t, c, "xhrsse_cluster_sessions_parked_total"); n != 2 {
		t.Errorf("parked %v sessions, want 2", n)
	}
}

// TestBrokerBackWithinTheGraceKeepsSessions: a node whose broker
// connection drops and is back within three quarters of Claim (its broker
// died and nats.go reconnected, to another broker of a cluster, in
// milliseconds) parks nothing: its client's stream goes on without a bye
// and without a gap, and no other node recovers the session meanwhile,
// since none may before the node was silent for Claim.
func TestBrokerBackWithinTheGraceKeepsSessions(t *testing.T) {
	br := clustertest.StartBroker(t)
	c, link := startLinkedNode(t, br, "c", time.Second, func(cfg *cluster.Config) { cfg.Claim = 2 * time.Second })
	a := clustertest.StartNode(t, br, "a")
	id := newSession(t, c, "one")
	s := openStream(t, c, id, "")
	evs := s.until(t, ssetest.Named("one"))
	if n := link.CutAll(soak.CutReset); n != 1 {
		t.Fatalf("%d connections cut, want c's one", n)
	}
	cut := time.Now()
	// Meanwhile a client of the session comes to a: a POST there reaches
	// the session on c once c is back, and is not a reason to recover it.
	ssetest.Eventually(t, "a POST through a answered", func() error {
		if st, _ := post(t, a.URL+"/sessions/"+id+"/chat", protocol.ChatPost{Text: "hello"}, nil); st != http.StatusAccepted {
			return fmt.Errorf("chat POST through a: %d", st)
		}
		return nil
	})
	// Past the grace, and well past c's reconnect: the stream went on.
	evs = append(evs, s.until(t, func(protocol.Message) bool { return time.Since(cut) > 2*time.Second })...)
	for _, m := range evs {
		if m.Name == protocol.EventBye || m.Name == protocol.EventGap {
			t.Fatalf("the stream on c got %s %s across a brief disconnection", m.Name, m.Data)
		}
	}
	ids(t, 0, evs)
	if _, ok := c.Hub.Session(id); !ok {
		t.Fatal("the session left c")
	}
	if _, ok := a.Hub.Session(id); ok {
		t.Fatal("the session is on a too")
	}
	if n := metric(t, c, "xhrsse_cluster_sessions_parked_total"); n != 0 {
		t.Errorf("c parked %v sessions", n)
	}
	if n := metric(t, a, "xhrsse_cluster_sessions_recovered_total"); n != 0 {
		t.Errorf("a recovered %v sessions", n)
	}
}

// TestParkedSessionThatMovedOnNotBroughtHome: a node back from a partition
// settles the sessions it parked one by one. One that its client brought
// here by a take meanwhile, and then on to another node, is not brought
// home from what was parked, even while its record still names this node
// (the other node's write has not landed): the parked copy is history, and
// importing it would put the session on two nodes.
func TestParkedSessionThatMovedOnNotBroughtHome(t *testing.T) {
	br, link, a, c := startPartitionable(t)
	id := newSession(t, c, "one")
	s := openStream(t, c, id, "")
	first := s.until(t, ssetest.Named("one"))

	// c settles the session only when the test says so.
	settle := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(settle) }) }
	t.Cleanup(release) // before the nodes close, which waits for settle
	t.Cleanup(cluster.HoldSettle(func(sid string) {
		if sid == id {
			<-settle
		}
	}))

	link.Down()
	last := ids(t, 0, append(first, s.until(t, ssetest.Named(protocol.EventBye))...))
	// Its client comes back through a, which recovers it after a gap.
	back := openStream(t, a, id, strconv.FormatUint(last, 10))
	back.until(t, ssetest.Named(protocol.EventGap))
	if err := link.Up(); err != nil {
		t.Fatal(err)
	}
	// While c holds its settling, the client comes to c (a take from a),
	// and goes back to a.
	ssetest.Eventually(t, "c on the broker again", func() bool { return cluster.Connected(c.Node) })
	openStream(t, c, id, "").until(t, ssetest.Named(protocol.EventSession))
	onA := openStream(t, a, id, "")
	onA.until(t, ssetest.Named(protocol.EventSession))
	if onA.node != "a" {
		t.Fatalf("stream on %q", onA.node)
	}
	// As if a's record write had not landed: the record names c.
	setRecordNode(t, br, id, "c")

	release()
	ssetest.Eventually(t, "c done settling", func() bool { return !cluster.Settling(c.Node) })
	_, onC := c.Hub.Session(id)
	_, stillOnA := a.Hub.Session(id)
	if onC || !stillOnA {
		t.Fatalf("after c settled: the session on c %v, on a %v; want on a alone", onC, stillOnA)
	}
}
