package broadcast

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// maxBatch bounds the bytes one write gathers, so a long replay is written in
// pieces and the session's lock is held only briefly each time.
const maxBatch = 64 << 10

// maxChunks bounds the bulk chunks one write carries: four 48 KiB chunks
// are about 256 KiB of base64, few enough syscalls and wake-ups per
// megabyte on both sides, little enough delay for the events behind them.
const maxChunks = 4

// A Stream is one connection's view of a session: a cursor into its history.
// Attach makes one; Run writes it to a ResponseWriter.
type Stream struct {
	s       *Session
	wakeC   chan struct{} // cap 1: "there is something new"
	cursor  uint64        // next id to write; Run changes it under s.mu
	start   uint64        // the position it started from
	sentAt  int64         // when its client sent the request (Position)
	resumed bool

	// end, when set, is why the stream must end: the reason of its bye.
	// Guarded by s.mu.
	end string

	flags atomic.Uint32 // flag… bits, raised by other goroutines

	// lastWrite is when the stream last wrote (unix nanoseconds), set by
	// its writer and read by wake; onWheel says a wake of it is on the
	// hub's wheel (set by who put it there, cleared by the wheel).
	lastWrite atomic.Int64
	onWheel   atomic.Bool

	pace pacer // bulk pacing by the connection (pacing.go); Run's own
}

// wake signals the stream without blocking. s.mu is held by the caller, so
// the ring's newest event is the one just pushed, if any. With a flush
// interval, an urgent one or an end wakes the stream at once and cuts a
// coalescing wait short (linger); any other is held on the hub's wheel until
// the stream's next write is due, unless that time has come already.
func (st *Stream) wake() {
	if d := st.s.hub.opts.flushInterval; d > 0 {
		if ev := st.s.ring.get(st.s.ring.next - 1); st.end != "" || (ev != nil && ev.urgent) {
			st.flags.Or(flagUrgent)
		} else if st.hold(d) {
			return
		}
	}
	st.signal()
}

// hold puts the stream's wake on the hub's wheel for d after its last
// write, and reports whether it did: not when that time has passed.
func (st *Stream) hold(d time.Duration) bool {
	due := st.lastWrite.Load() + int64(d)
	if time.Now().UnixNano() >= due {
		return false
	}
	if !st.onWheel.Swap(true) {
		st.s.hub.wheel.add(st, due)
	}
	return true
}

// signal wakes the stream's loop without blocking.
func (st *Stream) signal() {
	select {
	case st.wakeC <- struct{}{}:
	default:
	}
}

// Attach makes s's stream. With lastID, the stream resumes after that id
// (PROTOCOL.md "Resuming"); without, after what the previous stream wrote.
// A stream already attached is replaced: it ends with bye "replaced".
func (h *Hub) Attach(s *Session, lastID *uint64) (*Stream, error) {
	return h.AttachAt(s, Position{LastID: lastID})
}

// A Position is where a stream request resumes: the client's Last-Event-ID,
// if it sent one, and when it sent the request (Unix milliseconds, the
// "at" of GET /events; 0 if it did not say).
type Position struct {
	LastID *uint64
	SentAt int64
}

// AttachAt is Attach with the request's whole position.
func (h *Hub) AttachAt(s *Session, p Position) (*Stream, error) {
	return h.attach(s, p, false)
}

// Open opens a new session and its stream at once, for a client that asks
// for a stream without a session. At the stream cap it opens nothing.
func (h *Hub) Open() (*Session, *Stream, error) {
	if n := h.streams.Add(1); n > int64(h.opts.maxStreams) {
		h.streams.Add(-1)
		return nil, nil, ErrTooManyStreams
	}
	s, err := h.NewSession(nil)
	if err != nil {
		h.streams.Add(-1)
		return nil, nil, err
	}
	st, err := h.attach(s, Position{}, true)
	if err != nil {
		h.streams.Add(-1)
		h.Drop(s)
		return nil, nil, err
	}
	return s, st, nil
}

// attach is Attach; counted says the caller has taken the stream's place
// under the cap already.
func (h *Hub) attach(s *Session, p Position, counted bool) (*Stream, error) {
	lastID := p.LastID
	// Under h.mu, so that Close, which cancels under h.mu too, never waits
	// for a stream that is added after it started waiting.
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.ctx.Err() != nil {
		return nil, ErrClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return nil, ErrUnknownSession
	}
	if err := s.supersededLocked(p); err != nil {
		return nil, err
	}
	// A stream that replaces the session's own does not count against the
	// cap: the client whose connection died unnoticed must get back in.
	if !counted {
		if n := h.streams.Add(1); n > int64(h.opts.maxStreams) && s.stream == nil {
			h.streams.Add(-1)
			return nil, ErrTooManyStreams
		}
	}
	st := &Stream{s: s, wakeC: make(chan struct{}, 1)}
	from := s.sent
	if s.stream != nil {
		from = s.stream.cursor - 1
	}
	if lastID != nil {
		from = *lastID
		st.resumed = true
		h.stats.resumes.Add(1)
	}
	if from >= s.ring.next {
		// The client has seen ids this session never issued (it resumed
		// against a counter that was reset): continue above them.
		s.ring.skipTo(from + 1)
		s.reserveLocked(true)
	}
	st.cursor, st.start, st.sentAt = from+1, from, p.SentAt
	if old := s.stream; old != nil {
		old.end = protocol.ByeReplaced
		old.wake()
	}
	s.stream = st
	h.streamWG.Add(1)
	return st, nil
}

// supersededLocked refuses a resume that came late: one from before where
// the open stream started, or from the same place but sent before the open
// stream's request. A client's Last-Event-ID only grows, so such a request
// was sent before the open stream's, by the same client, and arrives late
// (it was stalled in a proxy, or took a detour through another node):
// letting it replace the open stream would cut off the client it came from.
// s.mu must be held.
func (s *Session) supersededLocked(p Position) error {
	live := s.stream
	if p.LastID == nil || live == nil {
		return nil
	}
	switch last := *p.LastID; {
	case last < live.start:
		return fmt.Errorf("%w (it resumed from %d, this request from %d)", ErrSuperseded, live.start, last)
	case last == live.start && p.SentAt != 0 && live.sentAt != 0 && p.SentAt < live.sentAt:
		return fmt.Errorf("%w (this request, from the same place, was sent %d ms before its)", ErrSuperseded, live.sentAt-p.SentAt)
	}
	return nil
}

// Resumed reports whether the stream was opened with a Last-Event-ID.
func (st *Stream) Resumed() bool { return st.resumed }

// Run writes the stream to w until ctx ends, the hub closes (bye
// "shutdown"), a newer stream replaces it (bye "replaced") or a write fails.
// It owns w for its whole life. Headers are the caller's to set.
//
// The loop waits on the wake channel alone: the end of ctx, the end of the
// hub and the ping timer raise a flag and wake it too. A receive on one
// channel costs a fraction of a select over four (which locks and queues on
// every channel, and adds a timer channel to the timer heap on every
// wait); at 10,000 streams that select was a tenth of the server's CPU.
func (st *Stream) Run(ctx context.Context, w http.ResponseWriter) (err error) {
	s, h := st.s, st.s.hub
	defer h.streamWG.Done()
	defer h.streams.Add(-1)
	defer st.detach()

	st.startPacing(ctx)
	out := newStreamWriter(w, h)
	out.last = &st.lastWrite
	// The connection may serve another request after this one.
	defer out.clearDeadline()
	stopCtx := context.AfterFunc(ctx, func() { st.raise(flagCtxDone) })
	defer stopCtx()
	stopHub := context.AfterFunc(h.ctx, func() { st.raise(flagHubDone) })
	defer stopHub()
	ping := time.AfterFunc(h.opts.pingInterval, func() { st.raise(flagPing) })
	defer ping.Stop()
	defer st.stopPace()
	defer out.release()

	// Preamble: retry, then the session event at the stream's position.
	s.mu.Lock()
	tuned := h.names(s.tuned)
	s.mu.Unlock()
	out.take()
	out.buf = protocol.AppendRetry(out.buf, protocol.RetryMillis)
	data, _ := json.Marshal(protocol.SessionEvent{Session: s.id, Channels: tuned, Resumed: st.resumed})
	out.buf, _ = protocol.AppendEvent(out.buf, st.cursor-1, protocol.EventSession, data)
	if err := out.write(); err != nil {
		return err
	}

	for {
		if f := st.flags.Load(); f&(flagCtxDone|flagHubDone) != 0 {
			if f&flagCtxDone != 0 {
				return ctx.Err()
			}
			return st.bye(out, protocol.ByeShutdown)
		} else if f&flagUrgent != 0 {
			st.flags.And(^uint32(flagUrgent))
		}
		more, ended, err := st.gather(out)
		if ended || err != nil {
			return err
		}
		if len(out.buf) > 0 {
			if err := out.write(); err != nil {
				return err
			}
		}
		if more {
			continue
		}
		if st.flags.Load()&flagPing != 0 {
			st.flags.And(^uint32(flagPing))
			// The timer is lazy: it fires a ping interval after it was
			// last set, and a write since then moves it instead of pinging.
			if quiet := time.Since(out.lastWrite); quiet < h.opts.pingInterval {
				ping.Reset(h.opts.pingInterval - quiet)
			} else {
				out.take()
				out.buf = protocol.AppendComment(out.buf, "ping")
				if err := out.write(); err != nil {
					return err
				}
				ping.Reset(h.opts.pingInterval)
			}
		}
		out.idle()
		<-st.wakeC
		if d := h.opts.flushInterval; d > 0 {
			st.linger(d)
		}
	}
}

// linger holds a woken stream back until d has passed since its last write,
// so that events arriving close together leave in one write and one flush:
// each stream writes at most once per d. A stream that has been quiet for d
// writes at once, so a lone event pays nothing; an urgent event (chat), an
// end or a stop cuts the wait short. The wait is on the hub's wheel, not a
// timer of the stream's own.
func (st *Stream) linger(d time.Duration) {
	for st.flags.Load()&(flagUrgent|flagCtxDone|flagHubDone) == 0 {
		due := st.lastWrite.Load() + int64(d)
		if time.Now().UnixNano() >= due {
			return
		}
		if !st.onWheel.Swap(true) {
			st.s.hub.wheel.add(st, due)
		}
		<-st.wakeC // the wheel, or something new: is it urgent?
	}
}

// Flags raised from other goroutines; each is followed by a wake.
const (
	flagCtxDone = 1 << iota // the request's context ended
	flagHubDone             // the hub is closing
	flagPing                // the ping timer fired
	flagUrgent              // an urgent event or an end is waiting (wake)
)

// raise sets a flag and wakes the stream's loop to look at it.
func (st *Stream) raise(f uint32) {
	st.flags.Or(f)
	st.signal()
}

// gather appends what is new to out.buf under the session's lock, up to
// maxBatch bytes or a run of up to maxChunks bulk chunks, and reports
// whether more is waiting. Chunks are encoded after the lock is released.
// A stream told to end writes its bye instead and reports ended.
func (st *Stream) gather(out *streamWriter) (more, ended bool, err error) {
	s, h := st.s, st.s.hub
	out.take()
	s.mu.Lock()
	if reason := st.end; reason != "" {
		s.mu.Unlock()
		return false, true, st.bye(out, reason)
	}
	var (
		chunks  [maxChunks]*event
		nChunks int
		firstID uint64 // id of chunks[0]; the run is consecutive
		n       int64
		buf     = out.buf
	)
	for len(buf) < maxBatch && nChunks < maxChunks {
		if st.cursor >= s.ring.next && (st.holdBulk() || !s.nextChunkLocked()) {
			break
		}
		if st.cursor < s.ring.first {
			if nChunks > 0 {
				break
			}
			missed := s.ring.first - st.cursor
			buf = protocol.AppendID(buf, s.ring.first-1)
			buf, _ = protocol.AppendBody(buf, protocol.EventGap, []byte(`{"missed":`+strconv.FormatUint(missed, 10)+`}`))
			st.cursor = s.ring.first
			h.stats.gaps.Add(1)
			h.stats.gapEvents.Add(int64(missed))
			continue
		}
		ev := s.ring.get(st.cursor)
		if ev.bulk != nil {
			// Chunks are made outside the lock, a short run of them at a
			// time: they delay the events around them by a few chunks at
			// most, and a stream that keeps up sends several per write.
			if len(buf) > 0 {
				break
			}
			if nChunks == 0 {
				firstID = st.cursor
			}
			chunks[nChunks] = ev
			nChunks++
			st.cursor++
			if nChunks == 1 && out.pace(st.linkBusy(out)) {
				break
			}
			continue
		}
		if nChunks > 0 {
			break
		}
		buf = protocol.AppendID(buf, st.cursor)
		buf = append(buf, ev.body...)
		st.cursor++
		n++
	}
	more = st.cursor < s.ring.next || len(s.transfers) > 0 && !st.pace.held
	s.mu.Unlock()

	for i, c := range chunks[:nChunks] {
		buf = protocol.AppendID(buf, firstID+uint64(i))
		if buf, out.scratch, err = c.bulk.appendChunkEvent(buf, out.scratch, c.seq); err != nil {
			out.buf = buf
			return false, false, err
		}
		h.stats.bulkChunks.Add(1)
		n++
	}
	out.buf = buf
	if n > 0 {
		h.stats.events.Add(n)
	}
	return more, false, nil
}

// bye ends the stream: the event carries the stream's position, so it takes
// no id from the session (PROTOCOL.md).
func (st *Stream) bye(out *streamWriter, reason string) error {
	data, _ := json.Marshal(protocol.Bye{Reason: reason})
	out.take()
	out.buf, _ = protocol.AppendEvent(out.buf, st.cursor-1, protocol.EventBye, data)
	return out.write()
}

func (st *Stream) detach() {
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stream == st {
		s.stream = nil
		s.sent = st.cursor - 1
		s.detachedAt = time.Now()
	}
}

// smallBuf is the write buffer a stream takes from bufPool. Buffers no larger
// than maxPooled go back to the pool when the stream goes idle, so an idle
// stream holds no buffer at all: memory per stream is the cost that grows
// with the number of streams, and at any moment only the streams being
// written need one.
const (
	smallBuf  = 1024
	maxPooled = 4 * smallBuf
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, smallBuf); return &b }}

// A streamWriter is a stream's side of the ResponseWriter: the buffer being
// filled, the lazy write deadline and the flush, resolved once.
type streamWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	flush   func() error // nil when w cannot flush (nor buffers)
	stats   *Stats
	timeout time.Duration

	buf     []byte  // what the next write sends; nil while idle
	box     *[]byte // bufPool's holder for buf
	scratch []byte  // a bulk chunk's raw bytes

	deadline  time.Time // the write deadline in force
	lastWrite time.Time
	last      *atomic.Int64 // if set, gets lastWrite in unix nanoseconds

	piece int           // write in pieces of this many bytes; 0: whole (pacing.go)
	took  time.Duration // the longest write since pacing last looked
}

func newStreamWriter(w http.ResponseWriter, h *Hub) *streamWriter {
	return &streamWriter{
		w: w, rc: http.NewResponseController(w), flush: flusherOf(w),
		stats: &h.stats, timeout: h.opts.writeTimeout,
	}
}

// flusherOf finds w's flush the way http.ResponseController.Flush does, once
// per stream instead of once per write.
func flusherOf(w http.ResponseWriter) func() error {
	for {
		switch t := w.(type) {
		case interface{ FlushError() error }:
			return t.FlushError
		case http.Flusher:
			return func() error { t.Flush(); return nil }
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return nil
		}
	}
}

// take makes sure there is a buffer to append to.
func (o *streamWriter) take() {
	if o.buf == nil {
		o.box = bufPool.Get().(*[]byte)
		o.buf = (*o.box)[:0]
	}
}

// idle gives the buffers up while the stream waits. One that a replay or a
// bulk chunk grew is left to the collector rather than pooled.
func (o *streamWriter) idle() {
	if o.buf != nil {
		if cap(o.buf) <= maxPooled {
			*o.box = o.buf[:0]
			bufPool.Put(o.box)
		}
		o.buf, o.box = nil, nil
	}
	o.scratch = nil
}

// release is idle for the end of the stream.
func (o *streamWriter) release() { o.idle() }

// write sends buf and flushes it, then empties buf.
func (o *streamWriter) write() error {
	// Moving a deadline costs more than a small write, so it is lazy: it
	// moves only when less than half of it is left (a blocked write is
	// ended after between half and all of the write timeout).
	now := time.Now()
	if o.deadline.Sub(now) < o.timeout/2 {
		o.deadline = now.Add(o.timeout)
		if err := o.rc.SetWriteDeadline(o.deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return fmt.Errorf("stream: deadline: %w", err)
		}
	}
	o.lastWrite = now
	if o.last != nil {
		o.last.Store(now.UnixNano())
	}
	n, err := o.send(o.buf)
	o.stats.bytesOut.Add(int64(n))
	if err == nil && o.flush != nil {
		// A writer that cannot flush does not buffer either.
		if err = o.flush(); errors.Is(err, http.ErrNotSupported) {
			err = nil
		}
	}
	o.buf = o.buf[:0]
	o.took = max(o.took, time.Since(now))
	if err != nil {
		return fmt.Errorf("stream: write: %w", err)
	}
	return nil
}

// clearDeadline lifts the write deadline, for the connection's next request.
func (o *streamWriter) clearDeadline() {
	if !o.deadline.IsZero() {
		_ = o.rc.SetWriteDeadline(time.Time{})
	}
}

// Cancel gives back a stream that will never Run (its request failed after
// Attach or Open), with its place under the stream cap.
func (st *Stream) Cancel() {
	h := st.s.hub
	st.detach()
	h.streams.Add(-1)
	h.streamWG.Done()
}
