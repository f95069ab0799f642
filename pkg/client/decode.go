package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// handler turns the events of one connection into Events: it checks ids
// against the stream position, decodes each by its name, feeds transfers and
// delivers. It runs on the goroutine of Run (see subscribe).
type handler struct {
	r      *runner
	ctx    context.Context // the connection's
	cancel context.CancelCauseFunc
	out    outcome
	node   string // X-Xhrsse-Node of the stream's answer
}

var _ listener = (*handler)(nil)

func (h *handler) opened(hdr http.Header) { h.node = hdr.Get("X-Xhrsse-Node") }

func (h *handler) retry(d time.Duration) { h.r.retry = d }

// end stops the connection after this event.
func (h *handler) end(out outcome) {
	h.out = out
	h.cancel(errStreamEnded)
}

func (h *handler) event(raw rawEvent) {
	s := h.r.s
	id, err := strconv.ParseUint(raw.id, 10, 64)
	if err != nil {
		h.end(outcome{fatal: true, err: fmt.Errorf("%w: event %q has id %q", ErrProtocol, raw.name, raw.id)})
		return
	}
	ev := Event{ID: id, Name: raw.name, Data: raw.data}

	switch ev.Name {
	case protocol.EventSession:
		h.session(ev)
		return
	case protocol.EventBye:
		h.bye(ev)
		return
	}

	s.mu.Lock()
	last, held := s.lastID, s.held
	if held != nil && id >= held.ID {
		s.held = nil
	}
	s.mu.Unlock()
	if id <= last {
		s.stats.duplicates.Add(1)
		return
	}
	if held != nil && id == held.ID {
		h.deliver(*held)
		return
	}
	h.decode(&ev)
}

// body decodes ev's data into v; the error wraps ErrProtocol.
func body(ev *Event, v any) error {
	if err := json.Unmarshal(ev.Data, v); err != nil {
		return fmt.Errorf("%w: %s event: %v", ErrProtocol, ev.Name, err)
	}
	return nil
}

// decode fills ev by its name, feeds transfers, and delivers it; false if
// the connection ends first (the event is then not taken: a resume gets it
// again). An event of a known name whose body does not decode is delivered
// as Kind Other with Err set.
func (h *handler) decode(ev *Event) bool {
	s := h.r.s
	switch ev.Name {
	case protocol.EventTuned:
		var t protocol.Tuned
		if ev.Err = body(ev, &t); ev.Err != nil {
			break
		}
		s.setChannels(t.Channels)
		ev.Kind, ev.Tuned = Tuned, &t
	case protocol.EventChat:
		var c protocol.Chat
		if ev.Err = body(ev, &c); ev.Err != nil {
			break
		}
		ev.Kind, ev.Chat = Chat, &c
	case protocol.EventGap:
		var g protocol.Gap
		if ev.Err = body(ev, &g); ev.Err != nil {
			break
		}
		s.stats.gaps.Add(1)
		s.stats.missed.Add(g.Missed)
		ev.Kind, ev.Gap = Gap, &g
		// The missed events may hold chunks or the bulk-end of any transfer
		// in flight, and nothing in the stream says which: a transfer whose
		// bulk-end was lost would wait forever. So every transfer in flight
		// fails now, clearly, and its later events are absorbed.
		why := fmt.Errorf("%w: a gap of %d events (ids %d to %d) may hold its chunks", ErrChunksLost, g.Missed, ev.ID-min(g.Missed, ev.ID)+1, ev.ID)
		for _, t := range s.failTransfers(why, false) {
			if !send(h.ctx, h.r.events, Event{Kind: BulkDone, Name: protocol.EventGap, Transfer: t}) {
				return false
			}
		}
	case protocol.EventBulk:
		var c protocol.BulkChunk
		if ev.Err = body(ev, &c); ev.Err != nil {
			break
		}
		t, ok := s.lookupTransfer(h.ctx, c.Transfer, c.Chunks)
		if !ok {
			return false
		}
		if t.isDone() {
			return h.absorb(*ev) // a chunk of a transfer that already failed
		}
		ev.Kind, ev.Transfer = BulkProgress, t
		if !t.chunk(c) {
			if !t.isDone() {
				return h.absorb(*ev) // a repeated chunk
			}
			// Failed now; it stays known until its bulk-end, so the rest of
			// its chunks are absorbed.
			ev.Kind = BulkDone
		}
	case protocol.EventBulkEnd:
		var e protocol.BulkEnd
		if ev.Err = body(ev, &e); ev.Err != nil {
			break
		}
		t, ok := s.lookupTransfer(h.ctx, e.Transfer, protocol.Chunks(e.Bytes))
		if !ok {
			return false
		}
		s.forgetTransfer(t.ID())
		if t.isDone() {
			return h.absorb(*ev) // failed before; its BulkDone was delivered then
		}
		t.end(e)
		ev.Kind, ev.Transfer = BulkDone, t
	case "message":
		ev.Kind = Other
	default:
		ev.Kind, ev.Channel, ev.Text = Tick, ev.Name, string(ev.Data)
	}
	if ev.Err != nil {
		ev.Kind = Other
	}
	return h.deliver(*ev)
}

// deliver takes ev (its id becomes the stream position) and sends it. The
// position moves first, so a caller that has received ev sees it in
// LastEventID; if the connection ends before the send, it moves back, and
// a resume gets ev again.
func (h *handler) deliver(ev Event) bool {
	s := h.r.s
	s.mu.Lock()
	prev := s.lastID
	s.lastID = ev.ID
	s.mu.Unlock()
	s.stats.events.Add(1)
	if send(h.ctx, h.r.events, ev) {
		return true
	}
	s.mu.Lock()
	s.lastID = prev
	if ev.Transfer != nil {
		// Its transfer has taken it already: keep it for the resume.
		s.held = &ev
	}
	s.mu.Unlock()
	s.stats.events.Add(^uint64(0))
	return false
}

// absorb takes ev without delivering it (a chunk of a transfer that ended).
func (h *handler) absorb(ev Event) bool {
	s := h.r.s
	s.mu.Lock()
	s.lastID = ev.ID
	s.mu.Unlock()
	return true
}

// session handles the event that opens a connection: it carries the stream
// position, which becomes the last id (normally it is the Last-Event-ID we
// sent; if the server says otherwise, it knows what it will send next).
func (h *handler) session(ev Event) {
	s := h.r.s
	var se protocol.SessionEvent
	if err := body(&ev, &se); err != nil {
		h.end(outcome{fatal: true, err: err})
		return
	}
	s.mu.Lock()
	id, last := s.id, s.lastID
	if se.Session == id {
		s.lastID = ev.ID
		s.streamed = true
		s.channels = se.Channels
	}
	s.mu.Unlock()
	if se.Session != id {
		h.end(outcome{fatal: true, err: fmt.Errorf("%w: stream of session %s announced session %s", ErrProtocol, protocol.ShortID(id), protocol.ShortID(se.Session))})
		return
	}
	if ev.ID != last {
		s.c.log.Info("client: stream position differs from ours", "session", protocol.ShortID(id), "ours", last, "server", ev.ID, "resumed", se.Resumed)
	}
	h.out.connected = true
	s.stats.connects.Add(1)
	st := Connected
	if se.Resumed {
		st = Resumed
		s.stats.resumes.Add(1)
	}
	h.r.state(h.ctx, Event{Name: ev.Name, Data: ev.Data, State: st, Session: &se, Node: h.node})
}

// bye handles the last event of a connection.
func (h *handler) bye(ev Event) {
	var b protocol.Bye
	if err := body(&ev, &b); err != nil {
		h.end(outcome{connected: h.out.connected, err: err})
		return
	}
	ev.Kind, ev.Bye = Bye, &b
	if send(h.ctx, h.r.events, ev) {
		h.r.s.stats.events.Add(1)
	}
	out := outcome{connected: h.out.connected, err: fmt.Errorf("client: server said bye %q", b.Reason)}
	switch b.Reason {
	case protocol.ByeReplaced:
		out.fatal, out.err = true, ErrReplaced
	case protocol.ByeExpired:
		out.gone = true
	}
	h.end(out)
}
