package soak

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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

var (
	errIdle    = errors.New("stream silent too long")
	errSelfCut = errors.New("client closed its connection")
)

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
	if err := postJSON(ctx, c.post, c.direct+"/sessions", protocol.CreateSession{Channels: channels}, &created); err != nil {
		return fmt.Errorf("%s: POST /sessions: %w", c.name, err)
	}
	c.sid = created.Session
	return nil
}

// say posts a chat on the client's session (a chatPoster).
func (c *rawClient) say(ctx context.Context, text string) (int, int64, error) {
	var acc protocol.ChatAccepted
	st, err := postTo(ctx, c.post, c.direct+"/sessions/"+c.sid+"/chat", protocol.ChatPost{Name: c.name, Text: text}, &acc)
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

// connect reads one connection until it ends.
func (c *rawClient) connect(ctx context.Context, rng *rand.Rand) {
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, c.base+"/events?session="+c.sid, nil)
	if err != nil {
		panic(err)
	}
	c.mu.Lock()
	resume, last := c.streamed, c.last
	c.mu.Unlock()
	if resume {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(last, 10))
	}
	c.setPhase(fmt.Sprintf("GET /events after %d", last))
	resp, err := c.stream.Do(req)
	if err != nil {
		c.setPhase(fmt.Sprintf("GET /events failed: %v", err))
		return // cut before the answer: try again
	}
	c.setPhase("reading")
	defer resp.Body.Close()
	node := resp.Header.Get("X-Xhrsse-Node")
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		c.mu.Lock()
		switch {
		case ctx.Err() != nil:
		case resp.StatusCode == http.StatusServiceUnavailable:
			c.unavailable("GET /events")
		case resp.StatusCode == http.StatusNotFound:
			c.sessionLost("GET /events on %q answered 404 %s", node, b)
		default:
			c.violation("GET /events answered %d %s", resp.StatusCode, b)
		}
		c.mu.Unlock()
		return
	}
	idle := time.AfterFunc(c.idle, func() { cancel(errIdle) })
	defer idle.Stop()
	if rng.IntN(4) == 0 {
		// The client closes its own connection, at a random point.
		self := time.AfterFunc(time.Duration(50+rng.IntN(1500))*time.Millisecond, func() {
			c.mu.Lock()
			c.st.SelfCuts++
			c.mu.Unlock()
			cancel(errSelfCut)
		})
		defer self.Stop()
	}
	dec := protocol.NewDecoder(watchdog{resp.Body, idle, c.idle}, 1<<20)
	for first := true; ; first = false {
		m, err := dec.Next()
		if err != nil {
			c.setPhase(fmt.Sprintf("stream ended: %v (cause %v)", err, context.Cause(cctx)))
			return
		}
		c.mu.Lock()
		c.lastAt = time.Now()
		c.take(m, first, resume, node)
		c.mu.Unlock()
	}
}

func (c *rawClient) setPhase(p string) {
	c.mu.Lock()
	c.phase = p + " at " + time.Now().Format("15:04:05.000")
	c.mu.Unlock()
}

// watchdog resets the idle timer on every read that brings bytes.
type watchdog struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func (w watchdog) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 {
		w.timer.Reset(w.d)
	}
	return n, err
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
	ch, err := parseChunk(data)
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
		st, err := postTo(pctx, c.post, c.direct+"/sessions/"+c.sid+"/bulk", protocol.BulkPost{Bytes: &n}, &acc)
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

// parseChunk decodes a bulk event's data as encoding/json would, but reads
// the long base64 string with the base64 decoder only: under -race the JSON
// scanner costs a function call per byte, and the soak moves hundreds of
// MiB. Anything not shaped as the server writes it goes to encoding/json.
func parseChunk(data string) (protocol.BulkChunk, error) {
	const key = `,"data":"`
	i := strings.Index(data, key)
	if i < 0 || !strings.HasSuffix(data, `"}`) {
		var c protocol.BulkChunk
		err := json.Unmarshal([]byte(data), &c)
		return c, err
	}
	var c protocol.BulkChunk
	if err := json.Unmarshal([]byte(data[:i]+"}"), &c); err != nil {
		return c, fmt.Errorf("chunk head %.100q: %w", data[:i], err)
	}
	raw, err := base64.StdEncoding.DecodeString(data[i+len(key) : len(data)-2])
	if err != nil {
		return c, fmt.Errorf("chunk %d data: %w", c.Seq, err)
	}
	c.Data = raw
	return c, nil
}

// postTo posts in as JSON and decodes a 2xx answer into out; it returns the
// status, or an error if there was no answer (or a 2xx one it could not
// read). A non-2xx answer's body is the error.
func postTo(ctx context.Context, hc *http.Client, url string, in, out any) (int, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%d %s", resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("answer %q: %w", raw, err)
		}
	}
	return resp.StatusCode, nil
}

// postJSON is postTo for a POST that must succeed.
func postJSON(ctx context.Context, hc *http.Client, url string, in, out any) error {
	_, err := postTo(ctx, hc, url, in, out)
	return err
}
