package cluster_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A stream request that reaches a node with no room for the session (its
// hub closing, or at its session cap) must leave the session where it is:
// its old node lets it go when asked, and an import refused after that lost
// it until a recovery, with a gap. Found by the cluster soak
// (TestSoakClusterNodeShutdown: "gap of 4057 … and no node died", recovered
// by the node its record named): a stream request in flight on the node
// being shut down took a session it could not keep.
func TestTakeWithNoRoomLeavesTheSession(t *testing.T) {
	tests := []struct {
		name   string
		opts   []broadcast.Option
		noRoom func(t *testing.T, b *clustertest.Node)
	}{
		{"hub closing", nil, func(t *testing.T, b *clustertest.Node) {
			// The node's HTTP server and cluster membership stay up, as
			// for requests in flight during a shutdown.
			if err := b.Hub.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
		{"at the session cap", []broadcast.Option{broadcast.WithMaxSessions(1)}, func(t *testing.T, b *clustertest.Node) {
			newSession(t, b, "one")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := clustertest.StartBroker(t)
			a := clustertest.StartNode(t, br, "a")
			b := clustertest.StartNode(t, br, "b", tt.opts...)
			id := newSession(t, a, "one")
			s := openStream(t, a, id, "")
			evs := s.until(t, ssetest.Named("one"))
			last := ids(t, 0, evs[1:])
			s.Close()
			tt.noRoom(t, b)

			req, _ := http.NewRequest(http.MethodGet, b.URL+"/events?session="+id, nil)
			req.Header.Set("Last-Event-ID", strconv.FormatUint(last, 10))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("GET /events on the node with no room: %d %s, want 503", resp.StatusCode, body)
			}
			if _, ok := a.Hub.Session(id); !ok {
				t.Fatal("the session left its node for one that could not take it")
			}
			// The client tries again, elsewhere: it resumes with no gap.
			s = openStream(t, a, id, strconv.FormatUint(last, 10))
			evs = s.until(t, ssetest.Named("one"))
			for _, m := range evs {
				if m.Name == protocol.EventGap {
					t.Fatalf("resumed with a gap: %s", m.Data)
				}
			}
			ids(t, last, evs[1:])
		})
	}
}
