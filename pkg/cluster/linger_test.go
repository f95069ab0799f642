package cluster_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/cluster"
)

// TestLingerWhileTheRecordNamesTheOldNode: a session moved from a to b, but
// its record still names a (b's write was lost with a broker, say). Past
// its linger a goes on telling other nodes the session is moving, so none
// recovers it from that record while b has it; once the record names b, a
// lets go.
func TestLingerWhileTheRecordNamesTheOldNode(t *testing.T) {
	br := clustertest.StartBroker(t)
	a, b := clustertest.StartNode(t, br, "a"), clustertest.StartNode(t, br, "b")
	id := newSession(t, a)
	openStream(t, b, id, "0") // b takes it from a
	kv, err := jetStreamOf(t, br).KeyValue(context.Background(), "xhrsse_sessions")
	if err != nil {
		t.Fatal(err)
	}
	setNode := func(node string) { setRecordNode(t, br, id, node) }
	ssetest.Eventually(t, "b's record written", func() bool {
		e, err := kv.Get(context.Background(), cluster.Key(id))
		var rec struct{ Node string }
		return err == nil && json.Unmarshal(e.Value(), &rec) == nil && rec.Node == "b"
	})
	setNode("a") // as if b's write never landed
	time.Sleep(cluster.Linger + 2*time.Second)
	if w := cluster.WhereIs(a.Node, id); w != "moving" {
		t.Fatalf("a says %q of the session past its linger, with the record naming a", w)
	}
	setNode("b")
	ssetest.Eventually(t, "a lets go once the record names b", func() bool { return cluster.WhereIs(a.Node, id) == "not held" })
}
