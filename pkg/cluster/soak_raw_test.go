package cluster_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A rawSoaker is a cluster soak client made of net/http and
// protocol.Decoder only: every request goes through the front (so to any
// node), its stream reconnects with Last-Event-ID after every cut, and it
// checks the wire itself: the session event's position, every id, every
// bulk chunk's place and every transfer's sha256.
type rawSoaker struct {
	*tally
	base   string
	stream *http.Client // one connection per stream
	post   *http.Client // one connection per POST: each goes to the next node
	sid    string
	idle   time.Duration
	notify chan struct{} // a transfer ended or a gap came

	// guarded by tally.mu
	streamed bool
	xfers    map[string]*rawXfer
}

// A rawXfer is one transfer as the stream brought it.
type rawXfer struct {
	chunks, next int
	n            int64
	h            hash.Hash
	failed       bool // a gap may hold some of it
	ended, ok    bool
	sum          string // bulk-end's sha256
}

func newRawSoaker(ctx context.Context, name, base string, run *soakRun, stream, post *http.Client, idle time.Duration, channels []string) (*rawSoaker, error) {
	c := &rawSoaker{
		tally: newTally(name, run), base: base, stream: stream, post: post, idle: idle,
		notify: make(chan struct{}, 1), xfers: map[string]*rawXfer{},
	}
	var created protocol.SessionCreated
	if st, err := postTo(ctx, post, base+"/sessions", protocol.CreateSession{Channels: channels}, &created); err != nil || st != http.StatusCreated {
		return nil, fmt.Errorf("%s: POST /sessions: %d %v", name, st, err)
	}
	c.sid = created.Session
	return c, nil
}

// run reads the stream until ctx ends. Runs in its own goroutine.
func (c *rawSoaker) run(ctx context.Context) {
	for ctx.Err() == nil {
		c.connect(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(rand.IntN(50)) * time.Millisecond):
		}
	}
}

// connect reads one connection until it ends.
func (c *rawSoaker) connect(ctx context.Context) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, _ := http.NewRequestWithContext(cctx, http.MethodGet, c.base+"/events?session="+c.sid, nil)
	c.mu.Lock()
	resumed, last := c.streamed, c.last
	c.mu.Unlock()
	if resumed {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(last, 10))
	}
	resp, err := c.stream.Do(req)
	if err != nil {
		return // cut before the answer
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		c.mu.Lock()
		switch {
		case ctx.Err() != nil:
		case resp.StatusCode == http.StatusServiceUnavailable:
			c.unavailable(false)
		case resp.StatusCode == http.StatusNotFound:
			c.sessionLost("GET /events on %s answered 404 %s", resp.Header.Get("X-Xhrsse-Node"), b)
		default:
			c.violation("GET /events answered %d %s", resp.StatusCode, b)
		}
		c.mu.Unlock()
		return
	}
	idle := time.AfterFunc(c.idle, cancel)
	defer idle.Stop()
	dec := protocol.NewDecoder(idleReader{resp.Body, idle, c.idle}, 1<<20)
	for first := true; ; first = false {
		m, err := dec.Next()
		if err != nil {
			return
		}
		c.mu.Lock()
		c.take(m, first, resumed, resp.Header.Get("X-Xhrsse-Node"))
		c.mu.Unlock()
	}
}

// idleReader resets the idle timer on every read that brings bytes.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func (w idleReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 {
		w.timer.Reset(w.d)
	}
	return n, err
}

// take checks one event. c.mu is held.
func (c *rawSoaker) take(m protocol.Message, first, resumed bool, node string) {
	id, err := strconv.ParseUint(m.ID, 10, 64)
	if err != nil {
		c.violation("event %s has id %q", m.Name, m.ID)
		return
	}
	if first != (m.Name == protocol.EventSession) {
		c.violation("event %s (id %d) first=%v: the session event opens every connection, and only it", m.Name, id, first)
	}
	switch m.Name {
	case protocol.EventSession:
		var ev protocol.SessionEvent
		if err := json.Unmarshal([]byte(m.Data), &ev); err != nil || ev.Session != c.sid {
			c.violation("session event %q: %v", m.Data, err)
		}
		if id != c.last {
			c.violation("session event on %s at position %d, Last-Event-ID was %d", node, id, c.last)
		}
		if ev.Resumed != resumed {
			c.violation("session event resumed=%v, Last-Event-ID sent: %v", ev.Resumed, resumed)
		}
		c.streamed = true
		c.connected(ev.Resumed)
		c.note("on " + node)
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
		for _, x := range c.xfers {
			if !x.ended && !x.failed {
				x.failed, x.ended = true, true
			}
		}
		c.signal()
	}
	c.event(id, m.Name, missed, nil)
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
		c.st.Ticks++
	default:
		c.violation("unexpected event %s %.80q", m.Name, m.Data)
	}
}

// chunk feeds one bulk event. c.mu is held.
func (c *rawSoaker) chunk(data string) {
	var ch protocol.BulkChunk
	if err := json.Unmarshal([]byte(data), &ch); err != nil {
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
			x.failed, x.ended = true, true
			c.signal()
		}
	}
	switch {
	case x.failed:
	case x.ended:
		c.violation("transfer %s: chunk %d after bulk-end", ch.Transfer, ch.Seq)
	case ch.Seq != x.next:
		c.violation("transfer %s: chunk %d, want %d, with no gap between", ch.Transfer, ch.Seq, x.next)
	default:
		x.next++
		x.n += int64(len(ch.Data))
		x.h.Write(ch.Data)
	}
}

// bulkEnd ends a transfer. c.mu is held.
func (c *rawSoaker) bulkEnd(e protocol.BulkEnd) {
	defer c.signal()
	x := c.xfers[e.Transfer]
	if x == nil {
		x = &rawXfer{h: sha256.New()}
		c.xfers[e.Transfer] = x
		if e.Bytes > 0 {
			if c.st.Gaps == 0 {
				c.violation("bulk-end of transfer %s (%d bytes) without its chunks and no gap", e.Transfer, e.Bytes)
			}
			x.failed, x.ended = true, true
			return
		}
	}
	if x.failed {
		return
	}
	if x.ended {
		c.violation("transfer %s: bulk-end twice", e.Transfer)
		return
	}
	x.ended, x.sum = true, e.SHA256
	got := hex.EncodeToString(x.h.Sum(nil))
	switch {
	case x.next != x.chunks || x.n != e.Bytes:
		c.violation("transfer %s: bulk-end after %d of %d chunks, %d of %d bytes", e.Transfer, x.next, x.chunks, x.n, e.Bytes)
	case got != e.SHA256:
		c.violation("transfer %s: sha256 %s, bulk-end says %s", e.Transfer, got, e.SHA256)
	default:
		x.ok = true
	}
}

func (c *rawSoaker) signal() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// chatLoop posts a chat through the front every period (with jitter) until
// load ends. Runs in its own goroutine.
func (c *rawSoaker) chatLoop(load context.Context, period time.Duration) {
	for n := 0; ; n++ {
		select {
		case <-load.Done():
			return
		case <-time.After(period/2 + rand.N(period)):
		}
		text := fmt.Sprintf("%s #%d", c.name, n)
		var acc protocol.ChatAccepted
		// Not cancelled with load: a POST cut short has an unknown fate.
		pctx, cancel := context.WithTimeout(context.Background(), soakWait)
		st, err := postTo(pctx, c.post, c.base+"/sessions/"+c.sid+"/chat", protocol.ChatPost{Name: c.name, Text: text}, &acc)
		cancel()
		if err != nil {
			st = 0
		}
		c.shared.chatted(text, st, acc.ID)
		c.mu.Lock()
		switch {
		case st == http.StatusServiceUnavailable:
			c.st.Chat503++
		case st == 0 && !c.shared.nodeLost.Load():
			c.violation("chat POST: %v, and no node went away", err)
		case st != 0 && st != http.StatusAccepted:
			c.violationOnce(fmt.Sprintf("chat POST answered %d", st), "chat POST answered %d (%s)", st, c.tail())
		}
		c.mu.Unlock()
	}
}

// bulkLoop asks for transfers through the front one after another until
// load ends; each must end on the stream verified, with the sha256 its POST
// announced, or failed by a gap that came after the POST.
// Runs in its own goroutine.
func (c *rawSoaker) bulkLoop(load context.Context, minSize, maxSize int64) {
	for load.Err() == nil {
		n := minSize + rand.Int64N(maxSize-minSize+1)
		c.mu.Lock()
		gaps := c.st.Gaps
		c.mu.Unlock()
		var acc protocol.BulkAccepted
		pctx, cancel := context.WithTimeout(context.Background(), soakWait)
		st, err := postTo(pctx, c.post, c.base+"/sessions/"+c.sid+"/bulk", protocol.BulkPost{Bytes: &n}, &acc)
		cancel()
		c.mu.Lock()
		switch {
		case err != nil:
			if !c.shared.nodeLost.Load() {
				c.violation("bulk POST: %v, and no node went away", err)
			}
			c.st.Unknown++
		case st == http.StatusServiceUnavailable:
			c.st.Bulk503++
		case st == http.StatusTooManyRequests:
			c.st.Bulk429++
		case st != http.StatusAccepted:
			c.violationOnce(fmt.Sprintf("bulk POST answered %d", st), "bulk POST answered %d", st)
		}
		c.mu.Unlock()
		if st != http.StatusAccepted {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		why := c.await(acc.Transfer, gaps)
		c.mu.Lock()
		x := c.xfers[acc.Transfer]
		switch {
		case why != "":
			got := "nothing"
			if x != nil {
				got = fmt.Sprintf("%d of %d chunks", x.next, x.chunks)
			}
			c.violation("transfer %s (%d bytes) got %s: %s; trail:\n%s", acc.Transfer, acc.Bytes, got, why, c.tail())
		case x == nil || x.failed:
			if c.st.Gaps == gaps {
				c.violation("transfer %s failed with no gap after its POST", acc.Transfer)
			}
			c.st.FailedByGap++
		case !x.ok:
			// violation noted at bulk-end
		case x.sum != acc.SHA256 || x.n != acc.Bytes:
			c.violation("transfer %s: received %d bytes, sha256 %s; the POST said %d, %s", acc.Transfer, x.n, x.sum, acc.Bytes, acc.SHA256)
		default:
			c.st.Verified++
			c.st.BulkBytes += x.n
		}
		c.mu.Unlock()
	}
}

// await waits until the transfer ended on the stream or a gap came after its
// POST; it returns why it gave up otherwise.
func (c *rawSoaker) await(id string, gaps int) string {
	limit := time.Now().Add(soakTransferLimit)
	for {
		c.mu.Lock()
		x := c.xfers[id]
		done := (x != nil && x.ended) || (x == nil && c.st.Gaps > gaps)
		c.mu.Unlock()
		if done {
			return ""
		}
		if time.Now().After(limit) {
			return fmt.Sprintf("no end in %v", soakTransferLimit)
		}
		select {
		case <-c.notify:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// postTo posts in as JSON and decodes a 2xx answer into out; it returns the
// status, or an error if there was no answer.
func postTo(ctx context.Context, hc *http.Client, url string, in, out any) (int, error) {
	body, _ := json.Marshal(in)
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
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("answer %q: %w", raw, err)
		}
	}
	return resp.StatusCode, nil
}
