package cluster_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/cluster"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// Chat POSTed to any node reaches every stream on every node, in one order,
// with one id.
func TestChatReachesEveryNode(t *testing.T) {
	nodes := clustertest.StartNodes(t, clustertest.StartBroker(t), "a", "b", "c")
	var sessions []string
	var streams []*stream
	for _, n := range nodes {
		id := newSession(t, n)
		sessions = append(sessions, id)
		streams = append(streams, openStream(t, n, id, ""))
	}
	for i, n := range nodes {
		text := "from " + n.Node.Name()
		var acc protocol.ChatAccepted
		if st, _ := post(t, n.URL+"/sessions/"+sessions[i]+"/chat", protocol.ChatPost{Name: "t", Text: text}, &acc); st != http.StatusAccepted {
			t.Fatalf("chat on %s: %d", n.Node.Name(), st)
		}
	}
	// Every stream sees the three messages in the same order with the same ids.
	var want []protocol.Chat
	for i, s := range streams {
		var got []protocol.Chat
		for len(got) < len(nodes) {
			m := s.next(t)
			if m.Name != protocol.EventChat {
				continue
			}
			var c protocol.Chat
			if err := json.Unmarshal([]byte(m.Data), &c); err != nil {
				t.Fatal(err)
			}
			got = append(got, c)
		}
		if i == 0 {
			want = got
			for j := 1; j < len(got); j++ {
				if got[j].ID <= got[j-1].ID {
					t.Fatalf("chat ids not increasing: %+v", got)
				}
			}
			continue
		}
		for j := range got {
			if got[j].ID != want[j].ID || got[j].Text != want[j].Text {
				t.Fatalf("stream on %s saw %+v, stream on a saw %+v", nodes[i].Node.Name(), got, want)
			}
		}
	}
	// A session opened later, on any node, gets them as history.
	late := openStream(t, nodes[2], newSession(t, nodes[2]), "")
	var hist []string
	for len(hist) < len(nodes) {
		m := late.next(t)
		if m.Name == protocol.EventChat {
			var c protocol.Chat
			_ = json.Unmarshal([]byte(m.Data), &c)
			if !c.History {
				t.Fatalf("history without history:true: %s", m.Data)
			}
			hist = append(hist, c.Text)
		}
	}
	if hist[0] != want[0].Text || hist[2] != want[2].Text {
		t.Fatalf("history %q, want %+v", hist, want)
	}
}

// Ticks are the same characters on every node: the nodes draw them from the
// cluster's seed, with no traffic between them.
func TestSameTicksOnEveryNode(t *testing.T) {
	b := clustertest.StartBroker(t)
	a, c := clustertest.StartNode(t, b, "a"), clustertest.StartNode(t, b, "c")
	sa := openStream(t, a, newSession(t, a, "one"), "")
	sc := openStream(t, c, newSession(t, c, "one"), "")
	read := func(s *stream) string {
		var sb strings.Builder
		for sb.Len() < 60 {
			if m := s.next(t); m.Name == "one" {
				sb.WriteString(m.Data)
			}
		}
		return sb.String()
	}
	ra, rc := []rune(read(sa)), []rune(read(sc))
	// The streams started at different ticks: find the longest run they share.
	best := 0
	for i := range ra {
		for j := range rc {
			k := 0
			for i+k < len(ra) && j+k < len(rc) && ra[i+k] == rc[j+k] {
				k++
			}
			best = max(best, k)
		}
	}
	// 52+ letters to draw from: 10 equal in a row by chance is ~1e-17.
	if best < 10 {
		t.Fatalf("nodes tick differently: %q vs %q (longest common run %d)", string(ra), string(rc), best)
	}
}

// A tune, bulk or chat POST that lands on a node other than the stream's
// takes effect on the stream.
func TestPostsForwardedToTheStreamsNode(t *testing.T) {
	nodes := clustertest.StartNodes(t, clustertest.StartBroker(t), "a", "b", "c")
	a, bn, c := nodes[0], nodes[1], nodes[2]
	id := newSession(t, a)
	s := openStream(t, a, id, "")
	if m := s.next(t); m.Name != protocol.EventSession {
		t.Fatalf("first event %s", m.Name)
	}

	var tuned protocol.Tuned
	st, by := post(t, bn.URL+"/sessions/"+id+"/channels", protocol.Tune{Channel: "two", On: ptr(true)}, &tuned)
	if st != http.StatusOK || by != "b" || len(tuned.Channels) != 1 || tuned.Channels[0] != "two" {
		t.Fatalf("tune via b: %d by %q, %+v", st, by, tuned)
	}
	s.until(t, ssetest.Named(protocol.EventTuned))
	s.until(t, ssetest.Named("two"))

	var acc protocol.BulkAccepted
	if st, _ := post(t, c.URL+"/sessions/"+id+"/bulk", protocol.BulkPost{Bytes: ptr(int64(200_000))}, &acc); st != http.StatusAccepted {
		t.Fatalf("bulk via c: %d", st)
	}
	h := sha256.New()
	for _, m := range s.until(t, ssetest.Named(protocol.EventBulkEnd)) {
		if m.Name != protocol.EventBulk {
			continue
		}
		var ch protocol.BulkChunk
		if err := json.Unmarshal([]byte(m.Data), &ch); err != nil {
			t.Fatal(err)
		}
		h.Write(ch.Data)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != acc.SHA256 {
		t.Fatalf("bulk via c: sha256 %s, announced %s", got, acc.SHA256)
	}

	var chat protocol.ChatAccepted
	if st, _ := post(t, c.URL+"/sessions/"+id+"/chat", protocol.ChatPost{Text: "via c"}, &chat); st != http.StatusAccepted || chat.ID == 0 {
		t.Fatalf("chat via c: %d %+v", st, chat)
	}
	s.until(t, chatText("via c"))

	// Errors come back from the session's node as they are.
	if st, _ := post(t, bn.URL+"/sessions/"+id+"/channels", protocol.Tune{Channel: "nope", On: ptr(true)}, nil); st != http.StatusNotFound {
		t.Fatalf("unknown channel via b: %d, want 404", st)
	}
	if st, _ := post(t, bn.URL+"/sessions/"+id+"/bulk", protocol.BulkPost{}, nil); st != http.StatusBadRequest {
		t.Fatalf("empty bulk via b: %d, want 400", st)
	}
	resp, err := http.Get(c.URL + "/sessions/" + id)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /sessions/ID via c: %d", resp.StatusCode)
	}
	if f, sv := metric(t, bn, "xhrsse_cluster_forwarded_total"), metric(t, a, "xhrsse_cluster_served_total"); f < 1 || sv < 4 {
		t.Fatalf("metrics: b forwarded %v, a served %v", f, sv)
	}
	if metric(t, a, "xhrsse_cluster_broker_connected") != 1 {
		t.Fatal("a does not report its broker connection")
	}
	// No node has this one.
	bogus := base64.RawURLEncoding.EncodeToString(make([]byte, protocol.SessionIDBytes))
	if st, _ := post(t, bn.URL+"/sessions/"+bogus+"/chat", protocol.ChatPost{Text: "x"}, nil); st != http.StatusNotFound {
		t.Fatalf("chat on an unknown session via b: %d, want 404", st)
	}
	resp, err = http.Get(c.URL + "/events?session=" + bogus)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /events of an unknown session via c: %d, want 404", resp.StatusCode)
	}
}

// A client that reconnects to another node resumes without loss: the
// session, history and all, moves to the new node.
func TestResumeOnAnotherNode(t *testing.T) {
	b := clustertest.StartBroker(t)
	a, bn := clustertest.StartNode(t, b, "a"), clustertest.StartNode(t, b, "b")
	id := newSession(t, a, "one", "three")
	s := openStream(t, a, id, "")
	evs := s.until(t, func(m protocol.Message) bool { return m.ID >= "30" && len(m.ID) >= 2 })
	last := ids(t, 0, evs)
	s.Close()

	// While the client is away the session goes on on a, and others chat.
	other := newSession(t, bn)
	if st, _ := post(t, bn.URL+"/sessions/"+other+"/chat", protocol.ChatPost{Text: "while away"}, nil); st != http.StatusAccepted {
		t.Fatalf("chat: %d", st)
	}
	time.Sleep(300 * time.Millisecond)

	s2 := openStream(t, bn, id, strconv.FormatUint(last, 10))
	first := s2.next(t)
	var se protocol.SessionEvent
	_ = json.Unmarshal([]byte(first.Data), &se)
	if first.Name != protocol.EventSession || !se.Resumed || first.ID != strconv.FormatUint(last, 10) || s2.node != "b" {
		t.Fatalf("resume on b: first event %+v from %q", first, s2.node)
	}
	evs = s2.until(t, chatText("while away"))
	evs = append(evs, s2.until(t, ssetest.Named("three"))...)
	for _, m := range evs {
		if m.Name == protocol.EventGap {
			t.Fatalf("gap on a resume from a live node: %s", m.Data)
		}
	}
	ids(t, last, evs)

	// The session is b's now: a forwards to it.
	if st, by := post(t, a.URL+"/sessions/"+id+"/channels", protocol.Tune{Channels: []string{"two"}}, nil); st != http.StatusOK || by != "a" {
		t.Fatalf("tune via a after the move: %d by %q", st, by)
	}
	s2.until(t, ssetest.Named("two"))
	if _, ok := a.Hub.Session(id); ok {
		t.Fatal("a still holds the session after b took it")
	}
	if tk, ho := metric(t, bn, "xhrsse_cluster_sessions_taken_total"), metric(t, a, "xhrsse_cluster_sessions_handed_over_total"); tk != 1 || ho != 1 {
		t.Fatalf("metrics: b took %v, a handed over %v", tk, ho)
	}
}

// A node that dies takes its sessions' history along; their clients resume
// on another node with a gap, and their tuning, and go on.
func TestNodeKilledClientsResumeElsewhere(t *testing.T) {
	b := clustertest.StartBroker(t)
	a, bn := clustertest.StartNode(t, b, "a"), clustertest.StartNode(t, b, "b")
	id := newSession(t, a, "three")
	s := openStream(t, a, id, "")
	evs := s.until(t, ssetest.Named("three"))
	last := ids(t, 0, evs)
	a.Kill()
	<-s.Done() // until the cut

	s2 := openStream(t, bn, id, strconv.FormatUint(last, 10))
	if m := s2.next(t); m.Name != protocol.EventSession {
		t.Fatalf("first event %s", m.Name)
	}
	m := s2.next(t)
	var gap protocol.Gap
	if m.Name != protocol.EventGap || json.Unmarshal([]byte(m.Data), &gap) != nil || gap.Missed == 0 {
		t.Fatalf("after a lost node: %+v, want a gap", m)
	}
	if gapID, _ := strconv.ParseUint(m.ID, 10, 64); gapID != last+gap.Missed {
		t.Fatalf("gap id %s, missed %d after %d", m.ID, gap.Missed, last)
	}
	evs = s2.until(t, ssetest.Named("three")) // still tuned
	ids(t, last+gap.Missed, evs)
	if st, _ := post(t, bn.URL+"/sessions/"+id+"/chat", protocol.ChatPost{Text: "after"}, nil); st != http.StatusAccepted {
		t.Fatalf("chat after recovery: %d", st)
	}
	s2.until(t, chatText("after"))
	if r := metric(t, bn, "xhrsse_cluster_sessions_recovered_total"); r != 1 {
		t.Fatalf("metrics: b recovered %v sessions, want 1", r)
	}
}

// A node shut down with SIGTERM hands its sessions over: a client that
// comes back elsewhere within the handover time loses nothing.
func TestShutdownHandsSessionsOver(t *testing.T) {
	b := clustertest.StartBroker(t)
	a, bn := clustertest.StartNode(t, b, "a"), clustertest.StartNode(t, b, "b")
	id := newSession(t, a, "one")
	s := openStream(t, a, id, "")
	// Every event from the start counts: the ones before the shutdown too.
	evs := s.until(t, ssetest.Named("one"))
	left := make(chan int, 1)
	go func() { left <- a.Shutdown(10 * time.Second) }()
	evs = append(evs, s.until(t, ssetest.Named(protocol.EventBye))...)
	last := ids(t, 0, evs)
	if !strings.Contains(evs[len(evs)-1].Data, protocol.ByeShutdown) {
		t.Fatalf("bye %s", evs[len(evs)-1].Data)
	}
	s2 := openStream(t, bn, id, strconv.FormatUint(last, 10))
	evs = s2.until(t, ssetest.Named("one"))
	for _, m := range evs {
		if m.Name == protocol.EventGap {
			t.Fatalf("gap after a handover: %s", m.Data)
		}
	}
	ids(t, last, evs)
	if n := <-left; n != 0 {
		t.Fatalf("%d sessions left on a after the handover", n)
	}
}

// The broker restarts: the nodes reconnect, chat works again and reaches
// every node, and ids go on from where they were. Away for longer than three
// quarters of Claim, the broker takes the sessions' streams along (each node parks
// its sessions, lest another recover them meanwhile: partition.go); once it
// is back, every session resumes where it was, with no gap.
func TestBrokerRestart(t *testing.T) {
	b := clustertest.StartBroker(t)
	a, bn := clustertest.StartNode(t, b, "a"), clustertest.StartNode(t, b, "b")
	ida, idb := newSession(t, a), newSession(t, bn)
	sa, sb := openStream(t, a, ida, ""), openStream(t, bn, idb, "")
	var before protocol.ChatAccepted
	if st, _ := post(t, a.URL+"/sessions/"+ida+"/chat", protocol.ChatPost{Text: "before"}, &before); st != http.StatusAccepted {
		t.Fatalf("chat: %d", st)
	}
	sb.until(t, chatText("before"))

	b.Stop()
	// While the broker is away, chat fails plainly (503), never quietly.
	if st, _ := post(t, a.URL+"/sessions/"+ida+"/chat", protocol.ChatPost{Text: "during"}, nil); st != http.StatusServiceUnavailable {
		t.Fatalf("chat without a broker: %d, want 503", st)
	}
	lastA := ids(t, 0, sa.until(t, ssetest.Named(protocol.EventBye)))
	lastB := ids(t, 0, sb.until(t, ssetest.Named(protocol.EventBye)))
	b.Start()

	var after protocol.ChatAccepted
	ssetest.Eventually(t, "chat after the broker restart", func() error {
		st, _ := post(t, bn.URL+"/sessions/"+idb+"/chat", protocol.ChatPost{Text: "after"}, &after)
		if st != http.StatusAccepted {
			return statusErr(st)
		}
		return nil
	})
	if after.ID <= before.ID {
		t.Fatalf("chat id %d after the restart, %d before", after.ID, before.ID)
	}
	// Each session resumes on its node, or through the other, from where
	// its stream ended: no gap, and the chat refused during the outage
	// never comes.
	for _, r := range []struct {
		via  *clustertest.Node
		id   string
		last uint64
	}{{a, ida, lastA}, {a, idb, lastB}} {
		s := openStream(t, r.via, r.id, strconv.FormatUint(r.last, 10))
		evs := s.until(t, chatText("after"))
		ids(t, r.last, evs)
		for _, m := range evs {
			if chatText("during")(m) || m.Name == protocol.EventGap {
				t.Fatalf("%s after the restart", m.Name)
			}
		}
		s.Close()
	}
	// Forwarding works again too.
	ssetest.Eventually(t, "tune via b after the restart", func() error {
		if st, _ := post(t, bn.URL+"/sessions/"+ida+"/channels", protocol.Tune{Channel: "one", On: ptr(true)}, nil); st != http.StatusOK {
			return statusErr(st)
		}
		return nil
	})
}

func ptr[T any](v T) *T { return &v }

// A node whose channels differ from the cluster's would tick differently:
// it is refused at Dial, with both settings in the error.
func TestNodeWithOtherChannelsRefused(t *testing.T) {
	b := clustertest.StartBroker(t)
	clustertest.StartNode(t, b, "a")
	other, err := broadcast.Describe(broadcast.DefaultChannelsAt(5, 3, 1))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := cluster.Dial(ctx, cluster.Config{URL: b.URL(), Node: "odd", Channels: other})
	if err == nil {
		n.Close()
		t.Fatal("a node with other channel rates joined")
	}
	if !strings.Contains(err.Error(), "differ") || !strings.Contains(err.Error(), `"rate":1`) {
		t.Fatalf("error %q does not say what differs", err)
	}
}

// A config bucket whose seed is not 32 bytes (written by something else)
// is refused at Dial, and the error says what it found.
func TestNodeWithBadSeedRefused(t *testing.T) {
	b := clustertest.StartBroker(t)
	js := jetStreamOf(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "xhrsse_config", Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "seed", []byte("short")); err != nil {
		t.Fatal(err)
	}
	described, err := broadcast.Describe(broadcast.DefaultChannelsAt(clustertest.ChannelRate))
	if err != nil {
		t.Fatal(err)
	}
	n, err := cluster.Dial(ctx, cluster.Config{URL: b.URL(), Node: "a", Channels: described})
	if err == nil {
		n.Close()
		t.Fatal("a node joined a cluster whose seed is 5 bytes")
	}
	if !strings.Contains(err.Error(), "5 bytes") || strings.Contains(err.Error(), "<nil>") {
		t.Fatalf("error %q does not say what is wrong with the seed", err)
	}
}

// jetStreamOf is a JetStream client of the test's own on broker b, for
// reading and writing what the nodes keep there; closed at cleanup.
func jetStreamOf(t *testing.T, b *clustertest.Broker) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(b.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestNodeBringingASessionSaysMoving: a node asked where a session is while
// it is bringing the session here (a take or claim under way) says
// "moving", not "not held". A claim writes the record naming its node before
// the session is on that node's hub; a second node that read the record
// then, and heard "not held", recovered the session too: on two nodes.
func TestNodeBringingASessionSaysMoving(t *testing.T) {
	br := clustertest.StartBroker(t)
	a, b := clustertest.StartNode(t, br, "a"), clustertest.StartNode(t, br, "b")
	id := newSession(t, a, "one")
	if got := cluster.WhereIs(b.Node, id); got != "not held" {
		t.Fatalf("b, which knows nothing of the session: %q", got)
	}
	release := cluster.HoldTake(b.Node, id)
	defer release()
	if got := cluster.WhereIs(b.Node, id); got != "moving" {
		t.Fatalf("b, bringing the session: %q, want moving", got)
	}
}
