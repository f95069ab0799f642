package cluster_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/pkg/cluster"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// TestChatWithoutAConsumer: a node whose ordered consumers are gone (their
// broker died, and no new one can be made yet) still delivers chat, read
// from the stream's replicas, each message once and in order.
func TestChatWithoutAConsumer(t *testing.T) {
	nodes := clustertest.StartNodes(t, clustertest.StartBroker(t), "a", "b")
	a, b := nodes[0], nodes[1]
	sa, sb := newSession(t, a), newSession(t, b)
	stream := openStream(t, b, sb, "")
	cluster.StopConsumers(b.Node)
	var ids []int64
	for _, text := range []string{"one", "two", "three"} {
		var acc protocol.ChatAccepted
		if st, _ := post(t, a.URL+"/sessions/"+sa+"/chat", protocol.ChatPost{Name: "t", Text: text}, &acc); st != http.StatusAccepted {
			t.Fatalf("chat %q: %d", text, st)
		}
		ids = append(ids, acc.ID)
	}
	for i, text := range []string{"one", "two", "three"} {
		m := stream.until(t, chatText(text))
		var c protocol.Chat
		if err := json.Unmarshal([]byte(m[len(m)-1].Data), &c); err != nil {
			t.Fatal(err)
		}
		if c.ID != ids[i] {
			t.Errorf("chat %q with id %d on node b, accepted as %d", text, c.ID, ids[i])
		}
		for _, e := range m[:len(m)-1] {
			if e.Name == protocol.EventChat {
				t.Errorf("before %q, node b delivered %s", text, e.Data)
			}
		}
	}
}
