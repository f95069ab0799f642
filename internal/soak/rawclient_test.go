package soak

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A rawClient is a reconnecting stream reader made of net/http and
// protocol.Decoder only (no pkg/client), so the soak checks the server's
// wire contract on its own. It checks every event as it arrives: the
// session event's position, each id one above the last (or, for a gap, the
// last missed one), chats in order, bulk chunks in sequence and each
// transfer's sha256. Its own reconnect loop sends Last-Event-ID, watches for
// silence (an idle cut) and sometimes closes its connection itself.
type rawClient struct {
	*tally
	stream *http.Client // GET /events, through the proxy
	post   *http.Client // POSTs
	base   string       // the proxy
	direct string       // where POSTs go: the server, or the proxy too
	idle   time.Duration

	// guarded by tally.mu
	streamed bool                // a stream was opened: send Last-Event-ID
	xfers    map[string]*rawXfer // by transfer id, as seen on the stream
	phase    string              // what connect is doing, for a diagnosis
	lastAt   time.Time           // when the last event was taken
}

// A rawXfer is one transfer as reassembled from the stream.
type rawXfer struct {
	chunks int
	next   int // next seq expected
	n      int64
	h      hash.Hash
	failed string // why it cannot complete: a gap
	ended  bool   // bulk-end seen (or given up after a gap)
	sum    string // sha256 of what arrived, at bulk-end
}

var errSelfCut = errors.New("client closed its connection")

func newRawClient(name, base, direct string, run *soakRun, stream, post *http.Client, idle time.Duration) *rawClient {
	return &rawClient{
		tally: newTally(name, run),
		base:  base, direct: direct, stream: stream, post: post, idle: idle,
		xfers: make(map[string]*rawXfer),
	}
}

// open creates the client's session, tuned to channels.
func (c *rawClient) open(ctx context.Context, channels []string) error {
	var created protocol.SessionCreated
	if _, err := ssetest.PostJSON(ctx, c.post, c.direct+"/sessions", nil, protocol.CreateSession{Channels: channels}, &created); err != nil {
		return fmt.Errorf("%s: POST /sessions: %w", c.name, err)
	}
	c.sid = created.Session
	return nil
}

// say posts a chat on the client's session (a chatPoster).
func (c *rawClient) say(ctx context.Context, text string) (int, int64, error) {
	var acc protocol.ChatAccepted
	st, err := ssetest.PostJSON(ctx, c.post, c.direct+"/sessions/"+c.sid+"/chat", nil, protocol.ChatPost{Name: c.name, Text: text}, &acc)
	return st, acc.ID, err
}

// run reads the session's stream until ctx ends, reconnecting after every
// cut. Runs in its own goroutine.
func (c *rawClient) run(ctx context.Context, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	for ctx.Err() == nil {
		c.connect(ctx, rng)
		// The server says retry: 2000; this client is impatient on purpose,
		// to fit many cuts into a short soak.
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(rng.IntN(30)) * time.Millisecond):
		}
	}
}

// connect reads one connection until it ends. Its stream decodes at most
// one event ahead of take, so that a slow client is a slow reader to the
// server too.
func (c *rawClient) connect(ctx context.Context, rng *rand.Rand) {
	c.mu.Lock()
	resume, last := c.streamed, c.last
	c.mu.Unlock()
	var header http.Header
	if resume {
		header = http.Header{"Last-Event-ID": {strconv.FormatUint(last, 10)}}
	}
	c.setPhase(fmt.Sprintf("GET /events after %d", last))
	s, r, err := ssetest.Connect(ctx, c.stream, c.base+"/events?session="+c.sid, header, ssetest.Idle(c.idle), ssetest.MaxQueue(1))
	if err != nil {
		c.setPhase(fmt.Sprintf("GET /events failed: %v", err))
		return // cut before the answer: try again
	}
	if s == nil {
		node := r.Header.Get("X-Xhrsse-Node")
		c.mu.Lock()
		switch {
		case ctx.Err() != nil:
		case r.Status == http.StatusServiceUnavailable:
			c.unavailable("GET /events")
		case r.Status == http.StatusNotFound:
			c.sessionLost("GET /events on %q answered 404 %.1024s", node, r.Body)
		default:
			c.violation("GET /events answered %d %.1024s", r.Status, r.Body)
		}
		c.mu.Unlock()
		return
	}
	defer s.Close()
	c.setPhase("reading")
	node := s.Response.Header.Get("X-Xhrsse-Node")
	if rng.IntN(4) == 0 {
		// The client closes its own connection, at a random point.
		self := time.AfterFunc(time.Duration(50+rng.IntN(1500))*time.Millisecond, func() {
			c.mu.Lock()
			c.st.SelfCuts++
			c.mu.Unlock()
			s.Cut(errSelfCut)
		})
		defer self.Stop()
	}
	for first := true; ; {
		ev, err := s.Recv(ssetest.Wait)
		if errors.Is(err, ssetest.ErrTimeout) {
			continue // the stream ends itself when idle (ssetest.Idle)
		}
		if err != nil {
			c.setPhase(err.Error())
			return
		}
		c.mu.Lock()
		c.lastAt = time.Now()
		c.take(ev.Message, first, resume, node)
		c.mu.Unlock()
		first = false
	}
}

func (c *rawClient) setPhase(p string) {
	c.mu.Lock()
	c.phase = p + " at " + time.Now().Format("15:04:05.000")
	c.mu.Unlock()
}

// take checks one dispatched event from node (empty: a single server).
// c.mu is held.
func (c *rawClient) take(m protocol.Message, first, resumed bool, node string) {
	d := m.Data
	if len(d) > 60 {
		d = d[:60]
	}
	c.note(fmt.Sprintf("%s %s %s", m.ID, m.Name, d))
	id, err := strconv.ParseUint(m.ID, 10, 64)
	if err != nil {
		c.violation("event %s has id %q", m.Name, m.ID)
		return
	}
	if first != (m.Name == protocol.EventSession) {
		c.violation("event %s (id %d) first=%v: the session event must open every connection, and only it", m.Name, id, first)
	}
	switch m.Name {
	case protocol.EventSession:
		var ev protocol.SessionEvent
		if err := json.Unmarshal([]byte(m.Data), &ev); err != nil || ev.Session != c.sid {
			c.violation("session event %q for session %s: %v", m.Data, c.sid, err)
		}
		if id != c.last {
			c.violation("session event on %q at position %d, Last-Event-ID was %d", node, id, c.last)
		}
		if ev.Resumed != resumed {
			c.violation("session event resumed=%v, Last-Event-ID sent: %v", ev.Resumed, resumed)
		}
		c.streamed = true
		c.connected(ev.Resumed, " on "+node)
		return
	case protocol.EventBye:
		if id != c.last {
			c.violation("bye at position %d, last event %d", id, c.last)
		}
		return
	}

	var missed uint64
	if m.Name == protocol.EventGap {
		var g protocol.Gap
		if err := json.Unmarshal([]byte(m.Data), &g); err != nil || g.Missed == 0 {
			c.violation("gap %q: %v", m.Data, err)
			g.Missed = 1
		}
		missed = g.Missed
		// The missed events may hold any transfer's chunks or bulk-end.
		for _, x := range c.xfers {
			if !x.ended && x.failed == "" {
				x.failed = fmt.Sprintf("gap of %d at id %d", g.Missed, id)
				x.ended = true
			}
		}
	}
	c.event(id, m.Name, missed)

	switch m.Name {
	case protocol.EventGap, protocol.EventTuned:
	case protocol.EventChat:
		var ch protocol.Chat
		if err := json.Unmarshal([]byte(m.Data), &ch); err != nil {
			c.violation("chat %q: %v", m.Data, err)
			return
		}
		c.chat(ch.ID, ch.Text, ch.History)
	case protocol.EventBulk:
		c.chunk(m.Data)
	case protocol.EventBulkEnd:
		var e protocol.BulkEnd
		if err := json.Unmarshal([]byte(m.Data), &e); err != nil {
			c.violation("bulk-end %q: %v", m.Data, err)
			return
		}
		c.bulkEnd(e)
	case "one", "two", "three":
		if m.Data == "" || !utf8.ValidString(m.Data) {
			c.violation("tick of %s with data %q", m.Name, m.Data)
		}
		c.st.Ticks++
	case pubChannel:
		c.published(m.Data)
	default:
		c.violation("unexpected event %s %.80q", m.Name, m.Data)
	}
}

// chunk feeds one bulk event. c.mu is held.
func (c *rawClient) chunk(data string) {
	ch, err := ssetest.ParseChunk(data)
	if err != nil {
		c.violation("bulk chunk: %v", err)
		return
	}
	x := c.xfers[ch.Transfer]
	if x == nil {
		x = &rawXfer{chunks: ch.Chunks, h: sha256.New()}
		c.xfers[ch.Transfer] = x
		if ch.Seq != 0 {
			if c.st.Gaps == 0 {
				c.violation("transfer %s starts at chunk %d with no gap before it", ch.Transfer, ch.Seq)
			}
			// It cannot complete: it has ended for the bulk loop, and its
			// later chunks and bulk-end are taken without a check.
			x.failed = fmt.Sprintf("first chunks lost in a gap (starts at %d)", ch.Seq)
			x.ended = true
			c.signal()
		}
	}
	if x.failed != "" {
		return // its chunks go on after the gap; it cannot complete
	}
	switch {
	case x.ended:
		c.violation("transfer %s: chunk %d after bulk-end", ch.Transfer, ch.Seq)
	case ch.Seq != x.next:
		c.violation("transfer %s: chunk %d, want %d, with no gap between", ch.Transfer, ch.Seq, x.next)
	case ch.Chunks != x.chunks:
		c.violation("transfer %s: chunk says %d chunks, first said %d", ch.Transfer, ch.Chunks, x.chunks)
	case len(ch.Data) == 0 || len(ch.Data) > protocol.BulkChunkSize:
		c.violation("transfer %s: chunk %d of %d bytes", ch.Transfer, ch.Seq, len(ch.Data))
	}
	x.next = ch.Seq + 1
	x.n += int64(len(ch.Data))
	x.h.Write(ch.Data)
}

// bulkEnd ends a transfer. c.mu is held.
func (c *rawClient) bulkEnd(e protocol.BulkEnd) {
	defer c.signal()
	x := c.xfers[e.Transfer]
	if x == nil {
		if e.Bytes > 0 && c.st.Gaps == 0 {
			c.violation("bulk-end of transfer %s (%d bytes) without its chunks and no gap", e.Transfer, e.Bytes)
		}
		x = &rawXfer{h: sha256.New()}
		if e.Bytes > 0 {
			x.failed, x.ended = "every chunk lost in a gap", true
		}
		c.xfers[e.Transfer] = x
	}
	if x.failed != "" {
		return
	}
	if x.ended {
		c.violation("transfer %s: bulk-end twice", e.Transfer)
		return
	}
	x.ended, x.sum = true, hex.EncodeToString(x.h.Sum(nil))
	switch {
	case x.next != x.chunks:
		c.violation("transfer %s: bulk-end after %d of %d chunks", e.Transfer, x.next, x.chunks)
	case x.n != e.Bytes:
		c.violation("transfer %s: %d bytes received, bulk-end says %d", e.Transfer, x.n, e.Bytes)
	case x.sum != e.SHA256:
		c.violation("transfer %s: sha256 %s, bulk-end says %s", e.Transfer, x.sum, e.SHA256)
	}
}

// bulkLoop asks for transfers of random sizes one after another until load
// ends, waiting for each to end on the stream: verified with the sha256 of
// the POST's answer, or failed by a gap that came after the POST. A
// transfer that stops while its stream flows is a stall (awaitTransfer).
// Runs in its own goroutine.
func (c *rawClient) bulkLoop(load context.Context, seed uint64, minSize, maxSize int64, diag func() string) {
	rng := rand.New(rand.NewPCG(seed, 2))
	for load.Err() == nil {
		n := minSize + rng.Int64N(maxSize-minSize+1)
		c.mu.Lock()
		gaps := c.st.Gaps
		c.mu.Unlock()
		var acc protocol.BulkAccepted
		// Not cancelled with load: a POST cut short has an unknown fate.
		pctx, cancel := context.WithTimeout(context.Background(), wait)
		st, err := ssetest.PostJSON(pctx, c.post, c.direct+"/sessions/"+c.sid+"/bulk", nil, protocol.BulkPost{Bytes: &n}, &acc)
		cancel()
		if err != nil || st != http.StatusAccepted {
			c.mu.Lock()
			c.bulkRefused(st, err)
			c.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
			continue
		}
		why := awaitTransfer(c.notify, c.shared.transferLimit,
			func() bool {
				c.mu.Lock()
				defer c.mu.Unlock()
				x := c.xfers[acc.Transfer]
				// Ended, or swallowed whole by a gap after it was asked for.
				return (x != nil && x.ended) || (x == nil && c.st.Gaps > gaps)
			},
			func() int64 {
				c.mu.Lock()
				defer c.mu.Unlock()
				if x := c.xfers[acc.Transfer]; x != nil {
					return int64(x.next)
				}
				return -1
			},
			func() int {
				c.mu.Lock()
				defer c.mu.Unlock()
				return c.st.Events
			})
		c.mu.Lock()
		// Only gaps fail a transfer on the wire.
		e := transferEnd{id: acc.Transfer, bytes: acc.Bytes, sha256: acc.SHA256, stalled: why, gapAfter: c.st.Gaps > gaps, progress: "nothing"}
		switch x := c.xfers[acc.Transfer]; {
		case x == nil:
			e.failed = "swallowed whole by a gap"
		default:
			e.progress = fmt.Sprintf("%d of %d chunks; stream at id %d, last event at %s, connection: %s", x.next, x.chunks, c.last, c.lastAt.Format("15:04:05.000"), c.phase)
			e.failed, e.got, e.sum = x.failed, x.n, x.sum
		}
		c.transferEnded(e, diag)
		c.mu.Unlock()
	}
}
