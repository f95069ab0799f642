package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/cluster"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A session's record names the node that holds it, even when the session
// moves while its old node is writing the record for a change made just
// before (a tune): the old node's write, landing after the new node's,
// would name the old node again, and a recovery would take its word for
// where the session is.
func TestRecordFollowsTheSessionThroughAMove(t *testing.T) {
	br := clustertest.StartBroker(t)
	a, b := clustertest.StartNode(t, br, "a"), clustertest.StartNode(t, br, "b")
	js := jetStreamOf(t, br)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kv, err := js.KeyValue(ctx, "xhrsse_sessions")
	if err != nil {
		t.Fatal(err)
	}
	id := newSession(t, a, "one")

	// a's record writer stops between "the session is here" and its put,
	// until b has had its chance to take the session.
	release := stickRecordWrite(t, a, id)
	taken := make(chan *stream, 1)
	go func() { taken <- openStream(t, b, id, "") }()
	// Long enough for the take to reach a and, unless a waits for its
	// write, to finish: then a's write lands last.
	time.Sleep(500 * time.Millisecond)
	close(release)
	s := <-taken
	s.until(t, ssetest.Named(protocol.EventSession))
	if s.node != "b" {
		t.Fatalf("stream on %q", s.node)
	}
	// Let a's writer finish whatever it had.
	time.Sleep(200 * time.Millisecond)
	e, err := kv.Get(ctx, cluster.Key(id))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct{ Node string }
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Node != "b" {
		t.Fatalf("the record names %q; the session is on b", rec.Node)
	}
}

// A record write that hangs (the sessions bucket has no leader) holds up
// the hand-over of its own session only: another session of the node moves
// meanwhile.
func TestStuckRecordWriteHoldsUpOnlyItsSession(t *testing.T) {
	br := clustertest.StartBroker(t)
	a, b := clustertest.StartNode(t, br, "a"), clustertest.StartNode(t, br, "b")
	stuck, other := newSession(t, a, "one"), newSession(t, a, "one")
	defer close(stickRecordWrite(t, a, stuck))

	s := openStream(t, b, other, "")
	defer s.Close()
	s.until(t, ssetest.Named(protocol.EventSession))
	if s.node != "b" {
		t.Fatalf("stream on %q", s.node)
	}
}

// stickRecordWrite makes node n write session id's record (a tune of
// channel "two") and holds its writer between "the session is here" and
// the put until release is closed; it returns once the writer is held.
// Undone at the test's end.
func stickRecordWrite(t *testing.T, n *clustertest.Node, id string) (release chan struct{}) {
	t.Helper()
	writing := make(chan struct{}, 1)
	release = make(chan struct{})
	t.Cleanup(cluster.SlowRecordWrites(func(sid string) {
		if sid != id {
			return
		}
		select {
		case writing <- struct{}{}:
			<-release
		default:
		}
	}))
	on := true
	tune, _ := json.Marshal(protocol.Tune{Channel: "two", On: &on})
	resp, err := http.Post(n.URL+"/sessions/"+id+"/channels", "application/json", bytes.NewReader(tune))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("tune: %d", resp.StatusCode)
	}
	<-writing
	return release
}
