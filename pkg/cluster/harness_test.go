package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/cluster"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// post sends a JSON POST and decodes a 2xx answer into out (if not nil);
// it returns the status and the node that answered.
func post(t *testing.T, url string, in, out any) (int, string) {
	t.Helper()
	body, _ := json.Marshal(in)
	r := ssetest.Do(t, http.DefaultClient, http.MethodPost, url, http.Header{"Content-Type": {"application/json"}}, string(body))
	if out != nil && r.Status/100 == 2 {
		if err := json.Unmarshal(r.Body, out); err != nil {
			t.Fatalf("POST %s: %v in %q", url, err, r.Body)
		}
	}
	return r.Status, r.Header.Get("X-Xhrsse-Node")
}

func newSession(t *testing.T, n *clustertest.Node, channels ...string) string {
	t.Helper()
	return ssetest.NewSession(t, http.DefaultClient, n.URL, channels...)
}

// A stream is one SSE connection to a node, read until the test ends.
type stream struct {
	*ssetest.Stream
	node string // the node that answered
}

func openStream(t *testing.T, n *clustertest.Node, session string, lastID string) *stream {
	t.Helper()
	var header http.Header
	if lastID != "" {
		header = http.Header{"Last-Event-ID": {lastID}}
	}
	var s *ssetest.Stream
	// A 503 says "try again" (a session between nodes, a node lost a moment
	// ago): as a client would, for a while.
	ssetest.Eventually(t, "GET /events on "+n.URL, func() error {
		var r ssetest.Reply
		s, r = ssetest.TryOpen(t, http.DefaultClient, n.URL+"/events?session="+session, header)
		switch {
		case s != nil:
			return nil
		case r.Status != http.StatusServiceUnavailable:
			t.Fatalf("GET /events on %s: %d %s", n.URL, r.Status, r.Body)
		}
		return fmt.Errorf("%d %s", r.Status, r.Body)
	})
	return &stream{Stream: s, node: s.Response.Header.Get("X-Xhrsse-Node")}
}

// next returns the next event, failing the test after ssetest.Wait.
func (s *stream) next(t *testing.T) protocol.Message {
	t.Helper()
	return s.Next(t)
}

// until reads events until one satisfies ok, and returns them all.
func (s *stream) until(t *testing.T, ok func(protocol.Message) bool) []protocol.Message {
	t.Helper()
	m, before := s.Until(t, "the event awaited", ok)
	return append(before, m)
}

func chatText(text string) func(protocol.Message) bool {
	return func(m protocol.Message) bool {
		var c protocol.Chat
		return m.Name == protocol.EventChat && json.Unmarshal([]byte(m.Data), &c) == nil && c.Text == text
	}
}

// ids checks that the events carry consecutive ids after from (session and
// bye carry the position instead) and returns the last.
func ids(t *testing.T, from uint64, evs []protocol.Message) uint64 {
	t.Helper()
	last := from
	for _, m := range evs {
		if m.Name == protocol.EventSession || m.Name == protocol.EventBye {
			continue
		}
		id, err := strconv.ParseUint(m.ID, 10, 64)
		if err != nil {
			t.Fatalf("event %s without a numeric id: %q", m.Name, m.ID)
		}
		if id != last+1 {
			t.Fatalf("event %s has id %d after %d", m.Name, id, last)
		}
		last = id
	}
	return last
}

var errStatus = errors.New("status")

func statusErr(code int) error { return fmt.Errorf("%w %d", errStatus, code) }

// metric reads one counter or gauge (no labels) from a node's /metrics.
func metric(t *testing.T, n *clustertest.Node, name string) float64 {
	t.Helper()
	return ssetest.Metric(t, http.DefaultClient, n.URL, name)
}

// runBroker starts a broker on a free loopback port with JetStream on,
// whatever else opts asks (users, TLS, operators), and stops it with the
// test. For brokers clustertest does not make.
func runBroker(t *testing.T, opts natsserver.Options) *natsserver.Server {
	t.Helper()
	opts.Host, opts.Port, opts.JetStream, opts.StoreDir, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, true, t.TempDir(), true, true
	srv, err := natsserver.NewServer(&opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("broker did not start")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

// setRecordNode rewrites session id's record on broker br to name node, as
// a record write that has not landed yet leaves it.
func setRecordNode(t *testing.T, br *clustertest.Broker, id, node string) {
	t.Helper()
	ctx := context.Background()
	kv, err := jetStreamOf(t, br).KeyValue(ctx, "xhrsse_sessions")
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, cluster.Key(id))
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		t.Fatal(err)
	}
	rec["node"] = node
	data, _ := json.Marshal(rec)
	if _, err := kv.Put(ctx, cluster.Key(id), data); err != nil {
		t.Fatal(err)
	}
}
