package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/soak"
	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// The slow link of TestLiveEventsOvertakeBulk: 1 MB/s down through a hop
// that holds 64 KiB, as a congested uplink or a phone's radio does.
const (
	slowRate   = 1 << 20
	slowBuffer = 64 << 10
)

// maxChunksAhead is how many bulk chunks may reach the client between a
// chat's POST being answered and the chat itself: what the link holds
// (64 KiB, one chunk), what the server's socket may keep unsent
// (TCP_NOTSENT_LOWAT, 16 KiB: half a chunk), the chunk being written and the
// proxy's own read buffer; rounded up. Unpaced, the server's send buffer
// holds megabytes, sixty chunks and more.
const maxChunksAhead = 5

// TestLiveEventsOvertakeBulk: a client on a slow link asks for a transfer
// far larger than the link carries in the test's time; chats posted while
// it flows (straight to the server, as from another client) reach the slow
// stream with only a few chunks ahead of each, ticks keep arriving between
// chunks, and a shutdown's bye does not wait for the transfer either.
// Over HTTP/1.1 and over HTTP/2, where the stream shares its connection.
func TestLiveEventsOvertakeBulk(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		name := "HTTP/1.1"
		if h2 {
			name = "HTTP/2"
		}
		t.Run(name, func(t *testing.T) { liveOvertakesBulk(t, h2) })
	}
}

func liveOvertakesBulk(t *testing.T, h2 bool) {
	opts := []broadcast.Option{broadcast.WithChannels(fastChannels(20)...)}
	var srv *testserver.Server
	if h2 {
		srv = testserver.StartTLS(t, testserver.Config{}, opts...)
	} else {
		srv = testserver.Start(t, opts...)
	}
	hc := srv.Client()
	t.Cleanup(hc.CloseIdleConnections)
	direct := &harness{srv: srv, hc: hc}
	p := soak.StartProxy(t, []string{srv.Addr}, soak.WithDownRate(slowRate), soak.WithUpstreamBuffer(slowBuffer))
	base := strings.Replace(srv.URL, srv.Addr, strings.TrimPrefix(p.URL(), "http://"), 1)

	channels := []string{}
	for _, c := range broadcast.DefaultChannels() {
		channels = append(channels, c.Name)
	}
	sid := direct.newSession(t, channels...)
	// Far more than the test waits for: the transfer is still flowing
	// when the server shuts down. Asked for before the stream opens, since
	// the proxy's rate is an average from the connection's start: a stream
	// that idled first would get a burst at full speed.
	direct.bulk(t, sid, `{"bytes":33554432}`)
	log := openLog(t, hc, base+"/events?session="+sid, h2)
	// Some chunks in, the server's socket has filled if it is going to.
	chunks := 0
	log.waitFor(t, "the 12th chunk", 0, func(m protocol.Message) bool {
		if m.Name == protocol.EventBulk {
			chunks++
		}
		return chunks == 12
	})
	time.Sleep(300 * time.Millisecond)

	for i := range 5 {
		from := log.len()
		id := direct.chat(t, sid, "fast", "overtakes the transfer")
		at := log.waitFor(t, "the chat", from, func(m protocol.Message) bool { return isChat(m, id) })
		ahead := log.countIn(from, at, protocol.EventBulk)
		if ahead > maxChunksAhead {
			t.Errorf("chat %d: %d bulk chunks reached the client between its POST and it, want <= %d", i, ahead, maxChunksAhead)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Channels ticking 20 times a second against a chunk every 64 ms or
	// so: no long run of chunks goes without a tick.
	if run := log.longestRun(protocol.EventBulk); run > 2*maxChunksAhead {
		t.Errorf("%d bulk chunks in a row with no other event between them, want <= %d", run, 2*maxChunksAhead)
	}

	from := log.len()
	closed := make(chan struct{})
	go func() { defer close(closed); srv.Close() }()
	at := log.waitFor(t, "bye", from, func(m protocol.Message) bool { return m.Name == protocol.EventBye })
	if ahead := log.countIn(from, at, protocol.EventBulk); ahead > maxChunksAhead {
		t.Errorf("%d bulk chunks reached the client between the shutdown and its bye, want <= %d", ahead, maxChunksAhead)
	}
	<-closed
}

func isChat(m protocol.Message, id int64) bool {
	if m.Name != protocol.EventChat {
		return false
	}
	var c protocol.Chat
	return json.Unmarshal([]byte(m.Data), &c) == nil && c.ID == id
}

// An eventLog is every event of one stream, in arrival order, so that the
// test can look at what arrived between two moments. It takes the events
// from an ssetest.Stream, whose reader stamps each as it arrives.
type eventLog struct {
	s      *ssetest.Stream
	events []ssetest.Event // taken so far, data cut to 256 bytes
}

// openLog opens the stream at url and logs its events until the test ends.
func openLog(t testing.TB, hc *http.Client, url string, h2 bool) *eventLog {
	t.Helper()
	s := ssetest.Open(t, hc, url, nil)
	if (s.Response.ProtoMajor == 2) != h2 {
		t.Fatalf("GET /events over %s", s.Response.Proto)
	}
	return &eventLog{s: s}
}

// take moves into the log the events that arrived within d; it returns
// the reason none came (ssetest.ErrTimeout, or the end of the stream).
func (l *eventLog) take(d time.Duration) error {
	ev, err := l.s.Recv(d)
	if err != nil {
		return err
	}
	ev.Data = strings.Clone(ev.Data[:min(len(ev.Data), 256)]) // chunks need no more
	l.events = append(l.events, ev)
	return nil
}

// len is how many events have arrived so far.
func (l *eventLog) len() int {
	for l.take(0) == nil {
	}
	return len(l.events)
}

// waitFor returns the index of the first event from index i on that
// satisfies pred, waiting for it.
func (l *eventLog) waitFor(t testing.TB, what string, i int, pred func(protocol.Message) bool) int {
	t.Helper()
	deadline := time.Now().Add(ssetest.Wait)
	for ; ; i++ {
		for i >= len(l.events) {
			if err := l.take(time.Until(deadline)); err != nil {
				t.Fatalf("waiting for %s: %v", what, err)
			}
		}
		if pred(l.events[i].Message) {
			return i
		}
	}
}

// arrival returns when event i arrived.
func (l *eventLog) arrival(i int) time.Time { return l.events[i].At }

// countIn counts the events named name among those from index from to to.
func (l *eventLog) countIn(from, to int, name string) int {
	n := 0
	for _, m := range l.events[from:to] {
		if m.Name == name {
			n++
		}
	}
	return n
}

// longestRun is the longest run of consecutive events named name.
func (l *eventLog) longestRun(name string) int {
	run, longest := 0, 0
	for _, m := range l.events {
		if m.Name != name {
			run = 0
			continue
		}
		run++
		longest = max(longest, run)
	}
	return longest
}
