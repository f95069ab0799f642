package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/cluster"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A session moving off a node whose chat consumer stalled gets every chat
// it missed, more than a node keeps (1,024), read from the broker's chat
// stream: in order, once each, no gap.
func TestMoveOffAStalledNodeFillsChatFromTheBroker(t *testing.T) {
	b := clustertest.StartBroker(t)
	nodes := clustertest.StartNodes(t, b, "a", "b")
	a, bn := nodes[0], nodes[1]
	id := newSession(t, a)
	s := openStream(t, a, id, "")
	s.until(t, ssetest.Named(protocol.EventSession))
	s.Close()

	release := cluster.HoldDeliveries(a.Node)
	defer release()
	const sent = 1200
	js := jetStreamOf(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var last uint64
	for i := range sent {
		data, _ := json.Marshal(protocol.Chat{Name: "t", Text: fmt.Sprintf("#%d", i)})
		ack, err := js.Publish(ctx, "xhrsse.chat", data)
		if err != nil {
			t.Fatal(err)
		}
		last = ack.Sequence
	}
	ssetest.Eventually(t, "node b delivered every chat", func() error {
		if got := bn.Hub.LastChatID(); got < int64(last) {
			return fmt.Errorf("node b at chat %d of %d", got, last)
		}
		return nil
	})

	s = openStream(t, bn, id, "") // taken from a, which delivered none of them
	defer s.Close()
	next := 0
	for next < sent {
		m := s.next(t)
		switch m.Name {
		case protocol.EventGap:
			t.Fatalf("gap after chat #%d: %s", next-1, m.Data)
		case protocol.EventChat:
			var c protocol.Chat
			if err := json.Unmarshal([]byte(m.Data), &c); err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("#%d", next); c.Text != want {
				t.Fatalf("chat %q (id %d), want %q next", c.Text, c.ID, want)
			}
			next++
		}
	}
}
