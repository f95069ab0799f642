package broadcast

import (
	"fmt"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A Position is where a stream request resumes: the client's Last-Event-ID,
// if it sent one, and when it sent the request (Unix milliseconds, the
// "at" of GET /events; 0 if it did not say).
type Position struct {
	LastID *uint64
	SentAt int64
}

// Attach makes s's stream. With p.LastID, the stream resumes after that id
// (PROTOCOL.md "Resuming"); without, after what the previous stream wrote.
// A stream already attached is replaced: it ends with bye "replaced". A
// resume that arrives late is refused with ErrSuperseded.
func (h *Hub) Attach(s *Session, p Position) (*Stream, error) {
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
	if p.LastID != nil {
		from = *p.LastID
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

// Cancel gives back a stream that will never Run (its request failed after
// Attach or Open), with its place under the stream cap.
func (st *Stream) Cancel() {
	h := st.s.hub
	st.detach()
	h.streams.Add(-1)
	h.streamWG.Done()
}
