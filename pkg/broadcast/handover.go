package broadcast

import (
	"fmt"
	"math"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A SessionState is a session in transit between the hubs of a cluster: all
// another hub needs to go on where this one stopped. It is plain data, made
// for encoding/json.
type SessionState struct {
	ID       string   `json:"id"`
	Channels []string `json:"channels"`
	// Events are the session's history, ids First, First+1, …; Next is the
	// id of the next event (Events may have lost old ones to fit a message).
	First  uint64       `json:"first"`
	Next   uint64       `json:"next"`
	Events []StateEvent `json:"events,omitempty"`
	// Sent is where a stream without Last-Event-ID continues.
	Sent uint64 `json:"sent"`
	// Transfers are those under way (Active) and those whose chunks are
	// still in Events, for a replay.
	Transfers []TransferState `json:"transfers,omitempty"`
	LastChat  int64           `json:"lastChat"`
	// LastPub is the last published event the session had (or was not
	// tuned to): the new hub sends none up to it again.
	LastPub uint64 `json:"lastPub,omitempty"`
}

// A StateEvent is one event of a SessionState: an encoded body, or a bulk
// chunk to make again from its transfer.
type StateEvent struct {
	At       int64  `json:"at"`
	Body     []byte `json:"body,omitempty"`
	Transfer string `json:"transfer,omitempty"`
	Seq      int    `json:"seq,omitempty"`
}

// AppendChat adds chat message msg to the state's history as the hub would
// have delivered it at at: a cluster node fills a moving session in with
// chat it reads from elsewhere.
func (st *SessionState) AppendChat(msg protocol.Chat, at time.Time) {
	ev := chatEvent(msg, at)
	st.Events = append(st.Events, StateEvent{At: ev.at, Body: ev.body})
	st.Next++
	st.LastChat = msg.ID
}

// A TransferState is one bulk transfer of a SessionState. Files are named,
// not carried: every hub of a cluster must serve the same -files directory.
type TransferState struct {
	ID     string   `json:"id"`
	Size   int64    `json:"size"`
	SHA256 string   `json:"sha256"`
	Seed   [32]byte `json:"seed"`
	File   string   `json:"file,omitempty"`
	Next   int      `json:"next"`
	Active bool     `json:"active"`
}

// Export takes the session away from the hub for another hub to Import: it
// is gone here (its stream, if any, ends with bye "replaced", since the
// client is about to attach elsewhere). budget bounds the encoded size of
// Events roughly; the oldest events are left out to fit, and a client
// resuming from before them gets a gap. p is where the stream the session
// moves for resumes: an export for a request that came late is refused
// (ErrSuperseded, see Attach).
func (h *Hub) Export(id string, budget int, p Position) (SessionState, error) {
	return h.export(id, budget, p, protocol.ByeReplaced)
}

// Withdraw takes the session away from the hub with all its history, as
// Export does, for a hub that can no longer vouch for it (a cluster node cut
// off from its broker): its stream, if any, ends with bye "shutdown", so the
// client comes back, wherever the session is by then.
func (h *Hub) Withdraw(id string) (SessionState, error) {
	return h.export(id, math.MaxInt, Position{}, protocol.ByeShutdown)
}

func (h *Hub) export(id string, budget int, p Position, bye string) (SessionState, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.sessions[id]
	if !ok {
		return SessionState{}, ErrUnknownSession
	}
	s.mu.Lock()
	if err := s.supersededLocked(p); err != nil {
		s.mu.Unlock()
		return SessionState{}, err
	}
	st := SessionState{
		ID: id, Channels: h.names(s.tuned), Next: s.ring.next,
		Sent: s.sent, LastChat: s.lastChat, LastPub: max(s.lastPub, h.pub.seq.Load()),
	}
	if s.stream != nil {
		st.Sent = s.stream.cursor - 1
		s.stream.end = bye
		s.stream.wake()
	}
	// Newest first, to keep the newest that fit.
	first, size := s.ring.next, 0
	for first > s.ring.first {
		ev := s.ring.get(first - 1)
		size += 64 + len(ev.body)*4/3
		if size > budget {
			break
		}
		first--
	}
	st.First = first
	xfers := map[*transfer]bool{}
	for _, t := range s.transfers {
		xfers[t] = true
	}
	for id := first; id < s.ring.next; id++ {
		ev := s.ring.get(id)
		se := StateEvent{At: ev.at, Body: ev.body}
		if ev.bulk != nil {
			se.Transfer, se.Seq = ev.bulk.id, ev.seq
			if _, ok := xfers[ev.bulk]; !ok {
				xfers[ev.bulk] = false
			}
		}
		st.Events = append(st.Events, se)
	}
	for _, t := range s.transfers { // in order: the round robin follows it
		st.Transfers = append(st.Transfers, t.state(true))
	}
	for t, active := range xfers {
		if !active {
			st.Transfers = append(st.Transfers, t.state(false))
		}
	}
	s.gone = true
	s.mu.Unlock()
	delete(h.sessions, id)
	h.setMaskLocked(s, 0)
	return st, nil
}

func (t *transfer) state(active bool) TransferState {
	ts := TransferState{ID: t.id, Size: t.size, SHA256: t.sum, Next: t.next, Active: active}
	if t.root != nil {
		ts.File = t.name
	} else {
		ts.Seed = t.seed
	}
	return ts
}

// Import makes a session exported by another hub live on this one. A stream
// attached next with a Last-Event-ID in the exported history resumes with no
// loss.
func (h *Hub) Import(st SessionState) (*Session, error) {
	if st.First > st.Next || int(st.Next-st.First) != len(st.Events) || st.First == 0 {
		return nil, fmt.Errorf("%w: session state: %d events for ids %d..%d", ErrBadRequest, len(st.Events), st.First, st.Next)
	}
	mask, err := h.mask(st.Channels)
	if err != nil {
		return nil, err
	}
	s := h.newSession(st.ID)
	byID := map[string]*transfer{}
	for _, ts := range st.Transfers {
		t := &transfer{id: ts.ID, size: ts.Size, chunks: protocol.Chunks(ts.Size), sum: ts.SHA256, seed: ts.Seed, next: ts.Next}
		if ts.File != "" {
			if h.root == nil || !validFileName(ts.File) {
				return nil, fmt.Errorf("%w %q: is -files the same on every node?", ErrUnknownFile, ts.File)
			}
			t.root, t.name = h.root, ts.File
		}
		byID[t.id] = t
		if ts.Active {
			s.transfers = append(s.transfers, t)
		}
	}
	s.ring.skipTo(st.First)
	for _, se := range st.Events {
		ev := &event{at: se.At, body: se.Body, seq: se.Seq}
		if se.Transfer != "" {
			if ev.bulk = byID[se.Transfer]; ev.bulk == nil {
				return nil, fmt.Errorf("%w: session state: event of unknown transfer", ErrBadRequest)
			}
		}
		s.ring.push(ev, &h.opts)
	}
	s.sent, s.lastChat, s.lastPub = st.Sent, st.LastChat, st.LastPub
	return s, h.adopt(s, mask, false)
}

// Recover makes a session live on this hub when the hub that held it died
// and took its history along: the session keeps its id and channels, and its
// ids go on from reserved, above any the dead hub used, so a stream that
// resumes gets a gap for what was lost rather than nothing.
// lastChat is the last chat id the client may have had, and lastPub the
// last published event's sequence number: none up to them is sent again,
// even by a hub that delivers them after the lost one did.
func (h *Hub) Recover(id string, channels []string, reserved uint64, lastChat int64, lastPub uint64) (*Session, error) {
	mask, err := h.mask(channels)
	if err != nil {
		return nil, err
	}
	s := h.newSession(id)
	s.ring.skipTo(max(reserved, 1))
	s.lastChat = max(h.LastChatID(), lastChat)
	s.lastPub = max(h.pub.seq.Load(), lastPub) // what was published meanwhile is in the gap
	return s, h.adopt(s, mask, false)
}
