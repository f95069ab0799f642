package broadcast

import (
	"context"
	"encoding/json"
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

	pace pacer // bulk pacing by the connection (pacing.go); wmu's

	// wmu is the stream's writer: whoever holds it, and only they, writes
	// the socket and moves cursor (under s.mu too); out and pace are
	// theirs. Run holds it except while parked, and for good once it
	// returns, so nothing writes a connection net/http has taken back. A
	// chat's fan-out takes it (TryLock) to write a parked stream directly
	// (writeDirect).
	wmu sync.Mutex
	out *streamWriter // guarded by wmu
	// direct says out can write without blocking (TryWriter), so a
	// fan-out may write the stream itself; set once by Run.
	direct atomic.Bool
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

// wakeDirect is wake for a caller that writes, after it releases its
// locks, the streams it is given (writeDirect): it reports true, instead
// of signalling, when st's write is due now and a direct write may serve
// it. s.mu is held by the caller.
func (st *Stream) wakeDirect() bool {
	if !st.direct.Load() {
		st.wake()
		return false
	}
	if d := st.s.hub.opts.flushInterval; d > 0 {
		if ev := st.s.ring.get(st.s.ring.next - 1); st.end == "" && (ev == nil || !ev.urgent) && st.hold(d) {
			return false
		}
	}
	return true
}

// hold reports whether the stream must wait before it writes again: d has
// not passed since its last write. Then its wake is on the hub's wheel for
// that time.
func (st *Stream) hold(d time.Duration) bool {
	due := st.lastWrite.Load() + int64(d)
	if time.Now().UnixNano() >= due {
		return false
	}
	st.toWheel(due)
	return true
}

// toWheel puts the stream's wake on the hub's flush wheel for unix time due
// (nanoseconds), unless it is on the wheel already.
func (st *Stream) toWheel(due int64) {
	if !st.onWheel.Swap(true) {
		st.s.hub.wheel.add(st, due)
	}
}

// signal wakes the stream's loop without blocking.
func (st *Stream) signal() {
	select {
	case st.wakeC <- struct{}{}:
	default:
	}
}

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

	st.wmu.Lock() // Run's until it parks; never given back once it returns
	st.startPacing(ctx)
	out := newStreamWriter(w, h, &st.lastWrite)
	st.out = out
	st.direct.Store(out.try != nil)
	// The connection may serve another request after this one.
	defer out.clearDeadline()
	stopCtx := context.AfterFunc(ctx, func() { st.raise(flagCtxDone) })
	defer stopCtx()
	stopHub := context.AfterFunc(h.ctx, func() { st.raise(flagHubDone) })
	defer stopHub()
	ping := time.AfterFunc(h.opts.pingInterval, func() { st.raise(flagPing) })
	defer ping.Stop()
	defer st.stopPace()
	defer out.idle()

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
		more, ended, err := st.gather(out, false)
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
			if quiet := time.Since(time.Unix(0, st.lastWrite.Load())); quiet < h.opts.pingInterval {
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
		st.wmu.Unlock()
		<-st.wakeC
		st.wmu.Lock()
		if st.flags.Load()&flagPending != 0 {
			// A fan-out wrote while the stream was parked and the socket
			// took only part: the rest goes first, with the blocking
			// write and its deadline.
			st.flags.And(^uint32(flagPending))
			if err := out.drain(); err != nil {
				return err
			}
		}
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
	for st.flags.Load()&(flagUrgent|flagCtxDone|flagHubDone) == 0 && st.hold(d) {
		<-st.wakeC // the wheel, or something new: is it urgent?
	}
}

// Flags raised from other goroutines; each is followed by a wake.
const (
	flagCtxDone = 1 << iota // the request's context ended
	flagHubDone             // the hub is closing
	flagPing                // the ping timer fired
	flagUrgent              // an urgent event or an end is waiting (wake)
	flagPending             // out's connection holds the rest of a direct write
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
//
// direct is a fan-out's gather (writeDirect): it takes only ready events,
// no bulk chunk, gap or bye, and reports more, gathering nothing, when
// anything else is due: that is the stream's goroutine's to write.
func (st *Stream) gather(out *streamWriter, direct bool) (more, ended bool, err error) {
	s, h := st.s, st.s.hub
	out.take()
	s.mu.Lock()
	if direct && (st.end != "" || len(s.transfers) > 0 || st.cursor < s.ring.first) {
		s.mu.Unlock()
		return true, false, nil
	}
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
		if st.cursor >= s.ring.next && (direct || st.holdBulk() || !s.nextChunkLocked()) {
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
		if ev.bulk != nil && direct {
			break
		}
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

// writeDirect writes what is due to st from the calling goroutine (a chat's
// fan-out) when st's own goroutine is parked and its connection can write
// without blocking: one non-blocking write, and no goroutine woken. A
// stream that is busy, has something other than ready events due, or
// whose socket would not take the whole write is woken as wake would: its
// goroutine writes, the rest first, with its blocking write and deadline.
// At thousands of streams the wake and park of each stream's goroutine
// cost a quarter of what its write does.
func (st *Stream) writeDirect() {
	if !st.wmu.TryLock() {
		st.raise(flagUrgent)
		return
	}
	st.finishDirect(st.flags.Load()&(flagPending|flagCtxDone|flagHubDone) == 0 && st.flushDirect())
}

// finishDirect gives st.wmu back after a direct write and wakes the stream
// unless the write was done: what is left is urgent, since it is due.
func (st *Stream) finishDirect(done bool) {
	st.wmu.Unlock()
	if !done {
		st.raise(flagUrgent)
	} else {
		st.s.hub.stats.directWrites.Add(1)
	}
}

// flushDue is the flush wheel's wake of st, whose next write is due: like
// a chat's fan-out, the wheel's goroutine writes a parked stream itself
// (writeDirect), and wakes it only when it cannot. A wake that came early
// goes back on the wheel; a stream that is awake (lingering for this very
// wake) is signalled.
func (st *Stream) flushDue() {
	if !st.direct.Load() {
		st.signal()
		return
	}
	if st.hold(st.s.hub.opts.flushInterval) {
		return // back on the wheel
	}
	if !st.wmu.TryLock() {
		st.signal()
		return
	}
	st.finishDirect(st.flags.Load()&(flagPending|flagCtxDone|flagHubDone) == 0 && st.flushDirect())
}

// flushDirect gathers and writes what is due without blocking, and
// reports whether nothing is left for the stream's goroutine. st.wmu must
// be held.
func (st *Stream) flushDirect() bool {
	out := st.out
	defer out.idle()
	more, _, err := st.gather(out, true)
	if err != nil {
		return false
	}
	if len(out.buf) == 0 {
		return !more
	}
	all, err := out.tryWrite()
	if !all || err != nil {
		// The connection keeps the rest (or its error) for drain.
		st.flags.Or(flagPending)
		st.s.hub.stats.directHandoffs.Add(1)
		return false
	}
	return !more
}
