package broadcast

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// maxBatch bounds the bytes one write gathers, so a long replay is written in
// pieces and the session's lock is held only briefly each time.
const maxBatch = 64 << 10

// smallBuf is a stream's write buffer when idle: a few ticks and a chat fit;
// memory per stream is the cost that grows with the number of streams.
const smallBuf = 1024

// A Stream is one connection's view of a session: a cursor into its history.
// Attach makes one; Run writes it to a ResponseWriter.
type Stream struct {
	s       *Session
	wakeC   chan struct{} // cap 1: "there is something new"
	cursor  uint64        // next id to write; Run changes it under s.mu
	resumed bool

	// end, when set, is why the stream must end: the reason of its bye.
	// Guarded by s.mu.
	end string
}

// wake signals the stream without blocking. s.mu is held by the caller.
func (st *Stream) wake() {
	select {
	case st.wakeC <- struct{}{}:
	default:
	}
}

// Attach makes s's stream. With lastID, the stream resumes after that id
// (PROTOCOL.md "Resuming"); without, after what the previous stream wrote.
// A stream already attached is replaced: it ends with bye "replaced".
func (h *Hub) Attach(s *Session, lastID *uint64) (*Stream, error) {
	return h.attach(s, lastID, false)
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
	st, err := h.attach(s, nil, true)
	if err != nil {
		h.streams.Add(-1)
		h.Drop(s)
		return nil, nil, err
	}
	return s, st, nil
}

// attach is Attach; counted says the caller has taken the stream's place
// under the cap already.
func (h *Hub) attach(s *Session, lastID *uint64, counted bool) (*Stream, error) {
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
	}
	st.cursor = from + 1
	if old := s.stream; old != nil {
		old.end = protocol.ByeReplaced
		old.wake()
	}
	s.stream = st
	h.streamWG.Add(1)
	return st, nil
}

// Resumed reports whether the stream was opened with a Last-Event-ID.
func (st *Stream) Resumed() bool { return st.resumed }

// Run writes the stream to w until ctx ends, the hub closes (bye
// "shutdown"), a newer stream replaces it (bye "replaced") or a write fails.
// It owns w for its whole life. Headers are the caller's to set.
func (st *Stream) Run(ctx context.Context, w http.ResponseWriter) (err error) {
	s, h := st.s, st.s.hub
	defer h.streamWG.Done()
	defer h.streams.Add(-1)
	defer st.detach()

	rc := http.NewResponseController(w)
	// The connection may serve another request after this one.
	defer rc.SetWriteDeadline(time.Time{})
	var (
		buf       = make([]byte, 0, smallBuf)
		scratch   []byte
		ping      = time.NewTimer(h.opts.pingInterval)
		lastWrite time.Time
		deadline  time.Time // the write deadline in force
	)
	defer ping.Stop()
	write := func() error {
		// Moving a deadline and a timer costs more than a small write, so
		// both are lazy: the deadline moves only when less than half of it
		// is left (a blocked write is ended after between half and all of
		// the write timeout), and the ping timer, when it fires, looks at
		// when the last write was.
		now := time.Now()
		if deadline.Sub(now) < h.opts.writeTimeout/2 {
			deadline = now.Add(h.opts.writeTimeout)
			if err := rc.SetWriteDeadline(deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return fmt.Errorf("stream: deadline: %w", err)
			}
		}
		lastWrite = now
		n, err := w.Write(buf)
		h.stats.bytesOut.Add(int64(n))
		if err == nil {
			// A writer that cannot flush does not buffer either.
			if err = rc.Flush(); errors.Is(err, http.ErrNotSupported) {
				err = nil
			}
		}
		buf = buf[:0]
		if err != nil {
			return fmt.Errorf("stream: write: %w", err)
		}
		return nil
	}

	// Preamble: retry, then the session event at the stream's position.
	s.mu.Lock()
	tuned := h.names(s.tuned)
	s.mu.Unlock()
	buf = protocol.AppendRetry(buf, protocol.RetryMillis)
	data, _ := json.Marshal(protocol.SessionEvent{Session: s.id, Channels: tuned, Resumed: st.resumed})
	buf, _ = protocol.AppendEvent(buf, st.cursor-1, protocol.EventSession, data)
	if err := write(); err != nil {
		return err
	}

	for {
		// Gather what is new under the lock; write it without.
		s.mu.Lock()
		if reason := st.end; reason != "" {
			s.mu.Unlock()
			return st.bye(write, &buf, reason)
		}
		var (
			bulk   *event
			bulkID uint64
			n      int64
		)
		for len(buf) < maxBatch {
			if st.cursor >= s.ring.next && !s.nextChunkLocked() {
				break
			}
			if st.cursor < s.ring.first {
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
				// A chunk is made outside the lock, and alone, so it delays
				// the events around it by one chunk at most.
				if len(buf) == 0 {
					bulk, bulkID = ev, st.cursor
					st.cursor++
				}
				break
			}
			buf = protocol.AppendID(buf, st.cursor)
			buf = append(buf, ev.body...)
			st.cursor++
			n++
		}
		more := st.cursor < s.ring.next || len(s.transfers) > 0
		s.mu.Unlock()

		if bulk != nil {
			buf = protocol.AppendID(buf, bulkID)
			if buf, scratch, err = bulk.bulk.appendChunkEvent(buf, scratch, bulk.seq); err != nil {
				return err
			}
			h.stats.bulkChunks.Add(1)
			n++
		}
		h.stats.events.Add(n)
		if len(buf) > 0 {
			if err := write(); err != nil {
				return err
			}
		}
		if more {
			// Let a shutdown through even while a transfer keeps us busy.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-h.ctx.Done():
				return st.bye(write, &buf, protocol.ByeShutdown)
			default:
			}
			continue
		}
		if cap(buf) > 4*smallBuf {
			// A replay or a bulk transfer grew the buffers: an idle stream
			// should not keep them.
			buf, scratch = make([]byte, 0, smallBuf), nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-h.ctx.Done():
			return st.bye(write, &buf, protocol.ByeShutdown)
		case <-ping.C:
			if quiet := time.Since(lastWrite); quiet < h.opts.pingInterval {
				ping.Reset(h.opts.pingInterval - quiet)
				continue
			}
			buf = protocol.AppendComment(buf, "ping")
			if err := write(); err != nil {
				return err
			}
			ping.Reset(h.opts.pingInterval)
		case <-st.wakeC:
			if d := h.opts.flushInterval; d > 0 {
				time.Sleep(d)
			}
		}
	}
}

// bye ends the stream: the event carries the stream's position, so it takes
// no id from the session (PROTOCOL.md).
func (st *Stream) bye(write func() error, buf *[]byte, reason string) error {
	data, _ := json.Marshal(protocol.Bye{Reason: reason})
	*buf, _ = protocol.AppendEvent(*buf, st.cursor-1, protocol.EventBye, data)
	return write()
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
