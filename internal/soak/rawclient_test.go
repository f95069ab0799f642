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
	"slices"
	"strconv"
	"strings"
	"sync"
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
	name   string
	stream *http.Client // GET /events, through the proxy
	post   *http.Client // POSTs, straight to the server
	base   string       // the proxy
	direct string       // the server
	sid    string
	idle   time.Duration

	notify chan struct{} // cap 1: a transfer ended or a gap came

	mu       sync.Mutex
	last     uint64 // id of the last event taken: the next Last-Event-ID
	streamed bool   // a stream was opened: send Last-Event-ID
	st       clientStats
	chats    []int64             // ids of live chats, in order of arrival
	xfers    map[string]*rawXfer // by transfer id, as seen on the stream
	posted   []postedXfer        // every transfer this client asked for
	errs     []string            // violations of PROTOCOL.md
	trail    []string            // the last events taken, for a diagnosis
	phase    string              // what connect is doing, for a diagnosis
	lastAt   time.Time           // when the last event was taken
}

// clientStats is what one soak client saw; both kinds report it.
type clientStats struct {
	Connects, Resumes, SelfCuts, Events, Ticks, Chats int
	Gaps                                              int
	Missed                                            uint64
	Verified, FailedByGap, Stalled                    int
	BulkBytes                                         int64
}

// A rawXfer is one transfer as reassembled from the stream.
type rawXfer struct {
	chunks int
	next   int // next seq expected
	n      int64
	h      hash.Hash
	failed string // why it cannot complete: a gap
	ended  bool   // bulk-end seen (or given up after a gap)
	ok     bool   // verified against bulk-end
	sum    string // bulk-end's sha256
}

// A postedXfer is one POST /bulk and its answer.
type postedXfer struct {
	acc        protocol.BulkAccepted
	gapsBefore int
}

var (
	errIdle    = errors.New("stream silent too long")
	errSelfCut = errors.New("client closed its connection")
)

func newRawClient(name, base, direct string, stream, post *http.Client, idle time.Duration) *rawClient {
	return &rawClient{
		name: name, base: base, direct: direct, stream: stream, post: post, idle: idle,
		notify: make(chan struct{}, 1),
		xfers:  make(map[string]*rawXfer),
	}
}

func (c *rawClient) violation(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

// open creates the client's session, tuned to every channel.
func (c *rawClient) open(ctx context.Context, channels []string) error {
	body, _ := json.Marshal(protocol.CreateSession{Channels: channels})
	var created protocol.SessionCreated
	if err := postJSON(ctx, c.post, c.direct+"/sessions", string(body), &created); err != nil {
		return fmt.Errorf("%s: POST /sessions: %w", c.name, err)
	}
	c.sid = created.Session
	return nil
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
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		if ctx.Err() == nil {
			c.mu.Lock()
			c.violation("GET /events answered %d %s", resp.StatusCode, b)
			c.mu.Unlock()
		}
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
		c.take(m, first, resume)
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

// take checks one dispatched event. c.mu is held.
func (c *rawClient) take(m protocol.Message, first, resumed bool) {
	d := m.Data
	if len(d) > 60 {
		d = d[:60]
	}
	c.trail = append(c.trail, fmt.Sprintf("%s %s %s", m.ID, m.Name, d))
	if len(c.trail) > 400 {
		c.trail = c.trail[len(c.trail)-200:]
	}
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
			c.violation("session event at position %d, Last-Event-ID was %d", id, c.last)
		}
		if ev.Resumed != resumed {
			c.violation("session event resumed=%v, Last-Event-ID sent: %v", ev.Resumed, resumed)
		}
		c.streamed = true
		c.st.Connects++
		if ev.Resumed {
			c.st.Resumes++
		}
		return
	case protocol.EventBye:
		if id != c.last {
			c.violation("bye at position %d, last event %d", id, c.last)
		}
		return
	}

	want := c.last + 1
	if m.Name == protocol.EventGap {
		var g protocol.Gap
		if err := json.Unmarshal([]byte(m.Data), &g); err != nil || g.Missed == 0 {
			c.violation("gap %q: %v", m.Data, err)
		}
		want = c.last + g.Missed
		c.st.Gaps++
		c.st.Missed += g.Missed
		// The missed events may hold any transfer's chunks or bulk-end.
		for _, x := range c.xfers {
			if !x.ended && x.failed == "" {
				x.failed = fmt.Sprintf("gap of %d at id %d", g.Missed, id)
				x.ended = true
				c.st.FailedByGap++
			}
		}
		c.signal()
	}
	if id != want {
		c.violation("event %s has id %d after %d, want %d", m.Name, id, c.last, want)
	}
	c.last = id
	c.st.Events++

	switch m.Name {
	case protocol.EventGap, protocol.EventTuned:
	case protocol.EventChat:
		var ch protocol.Chat
		if err := json.Unmarshal([]byte(m.Data), &ch); err != nil {
			c.violation("chat %q: %v", m.Data, err)
			return
		}
		if ch.History {
			return
		}
		if n := len(c.chats); n > 0 && ch.ID <= c.chats[n-1] {
			c.violation("chat %d after chat %d", ch.ID, c.chats[n-1])
		}
		c.chats = append(c.chats, ch.ID)
		c.st.Chats++
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
			c.st.FailedByGap++
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
	x := c.xfers[e.Transfer]
	if x == nil {
		if e.Bytes > 0 && c.st.Gaps == 0 {
			c.violation("bulk-end of transfer %s (%d bytes) without its chunks and no gap", e.Transfer, e.Bytes)
		}
		x = &rawXfer{h: sha256.New()}
		if e.Bytes > 0 {
			x.failed, x.ended = "every chunk lost in a gap", true
			c.st.FailedByGap++
		}
		c.xfers[e.Transfer] = x
	}
	defer c.signal()
	if x.failed != "" {
		return
	}
	if x.ended {
		c.violation("transfer %s: bulk-end twice", e.Transfer)
		return
	}
	x.ended, x.sum = true, e.SHA256
	got := hex.EncodeToString(x.h.Sum(nil))
	switch {
	case x.next != x.chunks:
		c.violation("transfer %s: bulk-end after %d of %d chunks", e.Transfer, x.next, x.chunks)
	case x.n != e.Bytes:
		c.violation("transfer %s: %d bytes received, bulk-end says %d", e.Transfer, x.n, e.Bytes)
	case got != e.SHA256:
		c.violation("transfer %s: sha256 %s, bulk-end says %s", e.Transfer, got, e.SHA256)
	default:
		x.ok = true
		c.st.Verified++
		c.st.BulkBytes += x.n
	}
}

// signal wakes the bulk loop. c.mu is held.
func (c *rawClient) signal() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// bulkLoop asks for transfers of random sizes one after another until load
// ends, waiting for each to end on the stream: verified, or failed by a gap.
// A transfer that stops while its stream flows is a stall (awaitTransfer).
// Runs in its own goroutine.
func (c *rawClient) bulkLoop(load context.Context, seed uint64, minSize, maxSize int64, diag func() string) {
	rng := rand.New(rand.NewPCG(seed, 2))
	for load.Err() == nil {
		n := minSize + rng.Int64N(maxSize-minSize+1)
		c.mu.Lock()
		gaps := c.st.Gaps
		c.mu.Unlock()
		var acc protocol.BulkAccepted
		err := postJSON(load, c.post, c.direct+"/sessions/"+c.sid+"/bulk", fmt.Sprintf(`{"bytes":%d}`, n), &acc)
		var se *statusError
		switch {
		case load.Err() != nil:
			return
		case errors.As(err, &se) && se.status == http.StatusTooManyRequests:
			time.Sleep(100 * time.Millisecond) // the previous one is still under way on the server
			continue
		case err != nil:
			c.mu.Lock()
			c.violation("POST bulk: %v", err)
			c.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
			continue
		}
		c.mu.Lock()
		c.posted = append(c.posted, postedXfer{acc: acc, gapsBefore: gaps})
		c.mu.Unlock()
		why := awaitTransfer(c.notify,
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
		if why == "" {
			continue
		}
		c.mu.Lock()
		c.st.Stalled++
		got := "nothing"
		if x := c.xfers[acc.Transfer]; x != nil {
			got = fmt.Sprintf("%d of %d chunks", x.next, x.chunks)
		}
		c.violation("STALL: transfer %s (%d bytes, %d chunks) got %s: %s; stream at id %d, last event at %s, connection: %s; %s; trail:\n%s",
			acc.Transfer, acc.Bytes, acc.Chunks, got, why, c.last, c.lastAt.Format("15:04:05.000"), c.phase, diag(), strings.Join(c.trail, "\n"))
		c.mu.Unlock()
	}
}

// reconcile checks every transfer asked for against what the stream
// brought: verified with the sha256 of the POST's answer, or failed by a
// gap that came after the POST. c.mu must not be held.
func (c *rawClient) reconcile() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.posted {
		x := c.xfers[p.acc.Transfer]
		switch {
		case x == nil && c.st.Gaps > p.gapsBefore:
			c.st.FailedByGap++ // swallowed whole by a gap
		case x == nil:
			c.violation("transfer %s (%d bytes) never showed on the stream", p.acc.Transfer, p.acc.Bytes)
		case x.failed != "" && c.st.Gaps > p.gapsBefore:
		case x.failed != "":
			c.violation("transfer %s failed (%s) though no gap came after it was asked for", p.acc.Transfer, x.failed)
		case !x.ended:
			c.violation("transfer %s never ended: %d of %d chunks", p.acc.Transfer, x.next, x.chunks)
		case x.ok && (x.sum != p.acc.SHA256 || x.n != p.acc.Bytes):
			c.violation("transfer %s: received %d bytes with sha256 %s; the POST said %d, %s", p.acc.Transfer, x.n, x.sum, p.acc.Bytes, p.acc.SHA256)
		}
	}
}

// chatIDs returns the live chat ids received so far.
func (c *rawClient) chatIDs() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.chats)
}

func (c *rawClient) stats() clientStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

func (c *rawClient) violations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.errs)
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

// A statusError is a non-2xx answer.
type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string { return fmt.Sprintf("%d %s", e.status, e.body) }

// postJSON posts body (JSON) and decodes a 2xx answer into out.
func postJSON(ctx context.Context, hc *http.Client, url, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &statusError{status: resp.StatusCode, body: strings.TrimSpace(string(b))}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}
