package cluster_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/cluster"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A silentLink relays TCP connections to a broker until Stall: from then on
// the connections it relays pass nothing either way, and stay open (a
// partition TCP does not notice: no FIN, no RST). New connections get
// through.
type silentLink struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup // accept and the pipes
	mu     sync.Mutex
	conns  []*silentConn // guarded by mu
	accept atomic.Int64
}

type silentConn struct {
	a, b    net.Conn
	stalled atomic.Bool
}

func startSilentLink(t *testing.T, target string) *silentLink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &silentLink{ln: ln, target: target}
	l.wg.Add(1)
	go l.serve()
	t.Cleanup(l.close)
	return l
}

func (l *silentLink) serve() {
	defer l.wg.Done()
	for {
		a, err := l.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", l.target)
		if err != nil {
			a.Close()
			continue
		}
		c := &silentConn{a: a, b: b}
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
		l.accept.Add(1)
		l.wg.Add(2)
		go l.pipe(c, a, b)
		go l.pipe(c, b, a)
	}
}

// pipe copies src to dst until either closes; stalled, it reads on and
// drops what it reads, so neither end hears anything and neither blocks,
// and when one end closes, the other is not told.
func (l *silentLink) pipe(c *silentConn, src, dst net.Conn) {
	defer l.wg.Done()
	defer src.Close()
	defer func() {
		if !c.stalled.Load() {
			dst.Close()
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !c.stalled.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Stall silences every connection relayed so far and returns how many.
func (l *silentLink) Stall() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.stalled.Store(true)
	}
	return len(l.conns)
}

func (l *silentLink) close() {
	l.ln.Close()
	l.mu.Lock()
	for _, c := range l.conns {
		c.a.Close()
		c.b.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// linkedBroker is a broker that node c reaches through a silentLink.
type linkedBroker struct{ url string }

func (b linkedBroker) URL() string   { return b.url }
func (b linkedBroker) Replicas() int { return 1 }

// startPlainBroker starts a broker with nats-server's defaults, among them
// its pings: every two minutes, so it keeps a connection that went silent,
// and the subscriptions on it, that long.
func startPlainBroker(t *testing.T) (addr string) {
	t.Helper()
	return runBroker(t, natsserver.Options{}).Addr().String()
}

// A node whose broker connection went silent connects again; the broker
// keeps the silent connection, and the session subscriptions on it, for
// minutes (its default pings). Requests for the node's sessions must reach
// the node on its new connection all the same: none is lost to the silent
// one (which would leave it unanswered until requestTimeout, then 503).
func TestSilentConnectionTakesNoRequests(t *testing.T) {
	addr := startPlainBroker(t)
	link := startSilentLink(t, addr)
	a := clustertest.StartNode(t, linkedBroker{"nats://" + addr}, "a")
	c := clustertest.StartNode(t, linkedBroker{"nats://" + link.ln.Addr().String()}, "c")
	ids := make([]string, 4)
	for i := range ids {
		ids[i] = newSession(t, c)
	}

	t.Logf("connections stalled: %d", link.Stall())
	stalled := time.Now()
	ssetest.Eventually(t, "c connected again through a new connection", func() bool {
		return link.accept.Load() > 1 && cluster.Connected(c.Node)
	})
	t.Logf("c connected again %v after the stall", time.Since(stalled).Round(time.Millisecond))
	// Its sessions are back on c (parked a moment, perhaps, and home again).
	hc := &http.Client{Timeout: 30 * time.Second}
	for _, id := range ids {
		ssetest.Eventually(t, "session answered on c", func() bool {
			resp, err := hc.Get(c.URL + "/sessions/" + id)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}

	t.Logf("sessions home on c %v after the stall", time.Since(stalled).Round(time.Millisecond))
	// Forwarded from a: each must reach c's live subscription.
	var wg sync.WaitGroup
	statuses := make([]int, 4*len(ids))
	for i := range statuses {
		wg.Go(func() {
			resp, err := hc.Get(a.URL + "/sessions/" + ids[i%len(ids)])
			if err != nil {
				t.Errorf("GET: %v", err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i, st := range statuses {
		if st != http.StatusOK {
			t.Errorf("GET /sessions/… forwarded from a, request %d: %d, want 200", i, st)
		}
	}
	t.Logf("forwards answered %v after the stall", time.Since(stalled).Round(time.Millisecond))
	// And taken by a, by a stream there.
	s := openStream(t, a, ids[0], "")
	defer s.Close()
	s.until(t, func(m protocol.Message) bool { return m.Name == "session" })
	t.Logf("taken by a %v after the stall", time.Since(stalled).Round(time.Millisecond))
}

// A forwarded request that reaches its session's node twice (its asker sent
// it again: nobody had replied yet, or only a node the session left) runs
// there once, and both copies get that run's answer.
func TestRequestSentTwiceRunsOnce(t *testing.T) {
	b := clustertest.StartBroker(t)
	a := clustertest.StartNode(t, b, "a")
	id := newSession(t, a)
	nc, inbox, req := forwardedChat(t, b, id)
	for range 2 {
		if err := nc.PublishRequest("xhrsse.session."+cluster.Key(id), inbox.Subject, req); err != nil {
			t.Fatal(err)
		}
	}
	var answers []string
	for len(answers) < 2 {
		m, err := inbox.NextMsg(ssetest.Wait)
		if err != nil {
			t.Fatalf("answers so far %q: %v", answers, err)
		}
		var rep struct {
			Held   bool   `json:"held"`
			Status int    `json:"status"`
			Body   []byte `json:"body"`
		}
		if err := json.Unmarshal(m.Data, &rep); err != nil {
			t.Fatal(err)
		}
		if !rep.Held {
			answers = append(answers, fmt.Sprintf("%d %s", rep.Status, rep.Body))
		}
	}
	var accepted protocol.ChatAccepted
	if err := json.Unmarshal([]byte(strings.TrimPrefix(answers[0], "202 ")), &accepted); err != nil {
		t.Fatalf("answer %q: %v", answers[0], err)
	}
	if answers[0] != answers[1] {
		t.Fatalf("the two copies were answered %q and %q", answers[0], answers[1])
	}
	// Ran twice, the second chat would be the last.
	ssetest.Eventually(t, "the chat delivered", func() bool { return a.Hub.LastChatID() >= accepted.ID })
	if last := a.Hub.LastChatID(); last != accepted.ID {
		t.Fatalf("last chat %d, the request's %d: it ran twice", last, accepted.ID)
	}
}

// A forwarded chat still running on its session's node when the session
// moves (its delivery is slow) is stored once, though a copy of it reaches
// the new node: the new node knows from the hand-over that it was running,
// and runs it again only under the same request id (its asker may have
// heard "moved" from the old node and wait for an answer from the new
// one), so the broker keeps the first store. Either node's answer carries
// that one chat id.
func TestRequestRunningWhenTheSessionMovesRunsOnce(t *testing.T) {
	b := clustertest.StartBroker(t)
	a := clustertest.StartNode(t, b, "a")
	bn := clustertest.StartNode(t, b, "b")
	id := newSession(t, a)
	nc, inbox, req := forwardedChat(t, b, id)
	subject := cluster.SessionSubject(a.Node, id)
	type answer struct {
		Node   string `json:"node"`
		Held   bool   `json:"held"`
		Moved  bool   `json:"moved"`
		Status int    `json:"status"`
		Body   []byte `json:"body"`
	}
	next := func() answer {
		t.Helper()
		m, err := inbox.NextMsg(ssetest.Wait)
		if err != nil {
			t.Fatal(err)
		}
		var rep answer
		if err := json.Unmarshal(m.Data, &rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}

	release := cluster.HoldDeliveries(a.Node) // a's chat run waits for its delivery
	if err := nc.PublishRequest(subject, inbox.Subject, req); err != nil {
		t.Fatal(err)
	}
	if rep := next(); !rep.Held || rep.Node != "a" {
		t.Fatalf("first reply %+v, want a's held", rep)
	}
	// The chat is published (its delivery held): the run is under way.
	ssetest.Eventually(t, "the chat on the broker", func() bool { return bn.Hub.LastChatID() >= 1 })
	s := openStream(t, bn, id, "") // the session moves to b meanwhile
	defer s.Close()
	if err := nc.PublishRequest(subject, inbox.Subject, req); err != nil { // a copy, to b now
		t.Fatal(err)
	}
	release()
	var final *answer
	for final == nil {
		if rep := next(); !rep.Held && !rep.Moved {
			final = &rep
		}
	}
	if final.Status != http.StatusAccepted {
		t.Fatalf("answer %+v, want 202", *final)
	}
	var accepted protocol.ChatAccepted
	if err := json.Unmarshal(final.Body, &accepted); err != nil {
		t.Fatal(err)
	}
	s.until(t, func(m protocol.Message) bool { return m.Name == "chat" })
	// Stored once: a second store would follow within the broker's round
	// trip; a later chat, posted now, comes right after the request's.
	if st, _ := post(t, bn.URL+"/sessions/"+id+"/chat", protocol.ChatPost{Name: "t", Text: "after"}, nil); st != http.StatusAccepted {
		t.Fatalf("chat on b: %d", st)
	}
	evs := s.until(t, chatText("after"))
	for _, m := range evs {
		if m.Name == "chat" && strings.Contains(m.Data, `"once"`) {
			t.Fatalf("the request's chat came twice: %s", m.Data)
		}
	}
	if last := bn.Hub.LastChatID(); last != accepted.ID+1 {
		t.Fatalf("last chat %d, want %d (the request's, then the one after)", last, accepted.ID+1)
	}
}

// forwardedChat connects to b as another node would and returns the
// connection, an inbox for replies, and a forwarded chat POST for session
// id under one request id: what another node sends (wire.go), the session
// by its key, its id a hole. The connection closes with the test.
func forwardedChat(t *testing.T, b *clustertest.Broker, id string) (*nats.Conn, *nats.Subscription, []byte) {
	t.Helper()
	nc, err := nats.Connect(b.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	inbox, err := nc.SubscribeSync(nc.NewInbox())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(protocol.ChatPost{Name: "t", Text: "once"})
	req, _ := json.Marshal(map[string]any{
		"op": "http", "from": "x", "key": cluster.Key(id), "reqId": "one-request",
		"method": http.MethodPost, "path": "/sessions/{id}/chat", "contentType": "application/json", "body": body,
	})
	return nc, inbox, req
}
