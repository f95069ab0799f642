package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// Session is one server session: its id, its tuned channels, its stream
// position and its bulk transfers. It is safe for concurrent use; only one
// Run may run at a time.
type Session struct {
	c *Client

	mu       sync.Mutex
	id       string
	channels []string // as last confirmed by the server
	lastID   uint64   // the last event id taken from the stream
	// held is a bulk event already applied to its transfer whose delivery
	// the end of a connection cut off: the resume brings its id back, and
	// then held is delivered instead of applying the event twice.
	held      *Event
	streamed  bool                 // a stream of this session id was opened: lastID is a position
	transfers map[string]*Transfer // by transfer id, until their bulk-end
	posting   map[chan struct{}]struct{}

	running atomic.Bool
	stats   counters
}

func newSession(c *Client, created protocol.SessionCreated) *Session {
	return &Session{
		c:         c,
		id:        created.Session,
		channels:  slices.Clone(created.Channels),
		transfers: make(map[string]*Transfer),
		posting:   make(map[chan struct{}]struct{}),
	}
}

// ID returns the current session id. It changes when the server forgot the
// session and Run opened a new one (State NewSession).
func (s *Session) ID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

// Channels returns the tuned set as last confirmed by the server (by a POST
// answer or a session or tuned event, whichever came last).
func (s *Session) Channels() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.channels)
}

// LastEventID returns the id of the last event Run took from the stream: the
// Last-Event-ID of the next reconnect.
func (s *Session) LastEventID() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastID
}

func (s *Session) setChannels(ch []string) {
	s.mu.Lock()
	s.channels = slices.Clone(ch)
	s.mu.Unlock()
}

// path returns the URL path of one of the session's endpoints.
func (s *Session) path(what string) string {
	return "/sessions/" + url.PathEscape(s.ID()) + "/" + what
}

// Tune tunes one channel in (on) or out and returns the new set. Tuning in
// twice is one subscription; the change takes effect on the live stream.
func (s *Session) Tune(ctx context.Context, channel string, on bool) ([]string, error) {
	return s.tune(ctx, protocol.Tune{Channel: channel, On: &on})
}

// SetChannels replaces the tuned set (empty tunes everything out) and returns
// the new set.
func (s *Session) SetChannels(ctx context.Context, channels []string) ([]string, error) {
	if channels == nil {
		channels = []string{}
	}
	return s.tune(ctx, protocol.Tune{Channels: channels})
}

func (s *Session) tune(ctx context.Context, t protocol.Tune) ([]string, error) {
	var out protocol.Tuned
	if err := s.c.do(ctx, http.MethodPost, s.path("channels"), t, &out); err != nil {
		return nil, err
	}
	s.setChannels(out.Channels)
	return slices.Clone(out.Channels), nil
}

// Chat sends a chat message to every session and returns its id. A 429
// answer is an *APIError with RetryAfter set.
func (s *Session) Chat(ctx context.Context, name, text string) (int64, error) {
	var out protocol.ChatAccepted
	if err := s.c.do(ctx, http.MethodPost, s.path("chat"), protocol.ChatPost{Name: name, Text: text}, &out); err != nil {
		return 0, err
	}
	return out.ID, nil
}

// Bulk starts a transfer (POST /sessions/ID/bulk). The returned Transfer is
// fed by the bulk and bulk-end events of the stream, so Run must be running
// (now or later) for it to progress. It writes the bytes to w in order (w
// nil discards them; a write error fails the transfer), hashes them and
// checks the sha256 against both the POST answer and bulk-end. Memory stays
// O(one chunk) whatever the size. ctx bounds only the POST.
func (s *Session) Bulk(ctx context.Context, req protocol.BulkPost, w io.Writer) (*Transfer, error) {
	// Chunks may arrive on the stream before this POST's answer names the
	// transfer; Run waits for posts in flight before it treats a transfer as
	// unknown (see Session.lookupTransfer).
	done := make(chan struct{})
	gaps := s.stats.gaps.Load()
	s.mu.Lock()
	s.posting[done] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.posting, done)
		s.mu.Unlock()
		close(done)
	}()

	var acc protocol.BulkAccepted
	if err := s.c.do(ctx, http.MethodPost, s.path("bulk"), req, &acc); err != nil {
		return nil, err
	}
	if acc.Transfer == "" || acc.Chunks != protocol.Chunks(acc.Bytes) {
		return nil, fmt.Errorf("%w: bulk answer %+v", ErrProtocol, acc)
	}
	t := newTransfer(acc, w)
	s.mu.Lock()
	s.transfers[acc.Transfer] = t
	s.mu.Unlock()
	if s.stats.gaps.Load() != gaps {
		// A gap came while the POST was out: the transfer may have
		// started before it, its chunks among what the gap swallowed
		// (a session its node lost, carried on by another), and it is
		// in flight at that gap as much as one answered before it.
		// (A gap counted after the transfer was known fails it there.)
		t.finish(fmt.Errorf("%w: a gap came while the transfer was asked for", ErrChunksLost))
	}
	return t, nil
}

// lookupTransfer returns the transfer with the given id. If it is unknown
// while Bulk POSTs are in flight, it waits for them (or ctx) first: the
// server may send the first chunk before the POST's answer is read. A
// transfer still unknown then was started by someone else holding the
// session id; it is adopted with a discarding writer, Bytes -1.
func (s *Session) lookupTransfer(ctx context.Context, id string, chunks int) (t *Transfer, ok bool) {
	for {
		s.mu.Lock()
		t := s.transfers[id]
		var wait []chan struct{}
		if t == nil {
			for ch := range s.posting {
				wait = append(wait, ch)
			}
		}
		s.mu.Unlock()
		if t != nil {
			return t, true
		}
		if len(wait) == 0 {
			break
		}
		for _, ch := range wait {
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, false
			}
		}
	}
	t = newTransfer(protocol.BulkAccepted{Transfer: id, Chunks: chunks, Bytes: -1}, nil)
	s.mu.Lock()
	if old := s.transfers[id]; old != nil {
		t = old
	} else {
		s.transfers[id] = t
	}
	s.mu.Unlock()
	return t, true
}

func (s *Session) forgetTransfer(id string) {
	s.mu.Lock()
	delete(s.transfers, id)
	s.mu.Unlock()
}

// failTransfers ends every transfer in flight with err and returns those it
// ended. With forget, they are also forgotten (the session is gone); without,
// they stay known so that their later chunks and bulk-end are absorbed.
func (s *Session) failTransfers(err error, forget bool) []*Transfer {
	s.mu.Lock()
	all := make([]*Transfer, 0, len(s.transfers))
	for id, t := range s.transfers {
		all = append(all, t)
		if forget {
			delete(s.transfers, id)
		}
	}
	s.mu.Unlock()
	ended := all[:0]
	for _, t := range all {
		if t.finish(err) {
			ended = append(ended, t)
		}
	}
	return ended
}

// Stats counts what Run saw on the session's streams.
type Stats struct {
	Events      uint64 // events delivered (all kinds but State)
	Duplicates  uint64 // events dropped because their id was not new
	Connects    uint64 // streams opened
	Resumes     uint64 // streams that resumed (session event resumed:true)
	NewSessions uint64 // sessions opened again after a 404 or bye "expired"
	Gaps        uint64 // gap events
	Missed      uint64 // events the gaps said were lost
}

type counters struct {
	events, duplicates, connects, resumes, newSessions, gaps, missed atomic.Uint64
}

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	return Stats{
		Events:      s.stats.events.Load(),
		Duplicates:  s.stats.duplicates.Load(),
		Connects:    s.stats.connects.Load(),
		Resumes:     s.stats.resumes.Load(),
		NewSessions: s.stats.newSessions.Load(),
		Gaps:        s.stats.gaps.Load(),
		Missed:      s.stats.missed.Load(),
	}
}
