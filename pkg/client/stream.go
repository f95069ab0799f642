package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	sse "github.com/r3labs/sse/v2"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// How this package uses github.com/r3labs/sse/v2 (v2.10.0), and why:
//
//   - One sse.Client per connection, subscribed with SubscribeRawWithContext:
//     the non-Raw calls add "?stream=NAME" to the URL, which this protocol
//     does not know.
//   - ReconnectStrategy is a backoff that always says stop, so r3labs makes
//     exactly one attempt and Run does the reconnecting. r3labs' own loop
//     (cenkalti/backoff exponential, 0.5 s growing to 60 s, giving up after
//     15 min) ignores the server's "retry:", retries a 404 instead of opening
//     a new session, and treats a clean end of the stream (EOF, e.g. after
//     bye "shutdown") as success, so it never reconnects then at all. Its
//     waits also do not watch the subscription's context (cenkalti/backoff
//     v1 waits on context.Background unless the BackOff carries one): after
//     ctx is cancelled while it is not connected, it keeps trying, each try
//     failing at once, until the 15 min are up, a goroutine left behind
//     (seen: still running 5 s after cancel, on a 404).
//   - A cancelled context and a clean end of the stream both come back as
//     nil (r3labs maps context.Canceled to io.EOF), so Run looks at its own
//     contexts to tell them apart.
//   - Last-Event-ID is set by Run in sse.Client.Headers (applied after
//     r3labs' own), from the last event Run actually took, not from
//     r3labs' LastEventID, which its read loop advances for events read
//     ahead but not yet handed over (and for events with no id it copies the
//     previous id into the Event, so ids are checked here, not trusted).
//   - ClientMaxBufferSize is raised: r3labs bounds a whole event (not a line)
//     by it, 64 KiB by default, and a 48 KiB bulk chunk is about 65.6 KiB as
//     an event. An event over the limit ends the read loop with
//     bufio.ErrTooLong; a resume would replay the same event forever, so it
//     is fatal (ErrEventTooLarge, raised first by eventReader).
//   - ResponseValidator: without one, r3labs turns every non-200 answer into
//     a string error ("could not connect to stream: Not Found"); with one it
//     does not close the body of a rejected answer, so ours does. It also
//     swaps resp.Body for an eventReader (normalize.go), which fixes r3labs'
//     line-end, BOM and truncated-event handling.
//   - r3labs passes blocks that the spec does not dispatch: a comment-only
//     block (": ping") or a "retry:" block arrives as an Event with no data
//     but with the previous id copied in. The spec dispatches only events
//     whose data buffer is non-empty; r3labs cannot tell "data:" (empty
//     data, dispatched by the spec) from no data line, so an event with
//     empty data is not dispatched here. Every event of PROTOCOL.md has
//     non-empty data, so nothing is lost. Likewise a field line without a
//     colon ("data", "id", "event") is ignored by r3labs except "data"; the
//     server never sends one.
//     An id containing NUL, which the spec ignores, is kept by r3labs and
//     then refused here as not a number.
//   - "retry:" is read from the Event r3labs gives (it never uses it itself)
//     if it is all ASCII digits, as the spec says.
//   - Not used: SubscribeChan*, whose read loop goroutine can stay blocked
//     on its unbuffered channel after Unsubscribe and which report only the
//     first connection's error; and OnConnect/OnDisconnect, which write
//     Client.Connected from the read loop goroutine without a lock.
//
// Run's handler runs on the goroutine that called SubscribeRawWithContext
// (r3labs calls it synchronously); r3labs' read loop goroutine ends when the
// connection's context is cancelled, so nothing outlives connect.

// slack lets r3labs' buffer hold one event of the maximum size plus what
// arrives with it, so eventReader's limit is the one that trips.
const slack = 4 << 10

var (
	errIdle        = errors.New("client: stream idle too long")
	errStreamEnded = errors.New("client: stream ended")
)

// noRetry is a cenkalti/backoff.BackOff that stops at once (backoff.Stop is
// -1), so r3labs makes a single attempt.
type noRetry struct{}

func (noRetry) Reset()                     {}
func (noRetry) NextBackOff() time.Duration { return -1 }

// Run reads the session's stream and delivers every event to events until ctx
// ends. It opens GET /events?session=ID, and after a network loss or a server
// restart reconnects with Last-Event-ID: first after the server's retry:
// delay (2000 ms), then with doubling, jittered waits capped by
// WithMaxBackoff while tries fail. State changes are delivered as Events of
// Kind State. If the server answers 404 for the session (restarted, expired)
// or says bye "expired", Run opens a new session with the channels last
// tuned, fails the transfers in flight (ErrSessionLost) and reports State
// NewSession. Events whose id is not above the last one taken are dropped and
// counted (Stats.Duplicates); the session and bye events, which repeat the
// stream position, are not duplicates.
//
// Run returns ctx.Err() when ctx ends. It returns another error, after a
// State Failed event, when going on makes no sense: ErrReplaced (another
// client attached to the session), ErrEventTooLarge, ErrProtocol, or an
// *APIError that retrying cannot fix (400, 403). A send on events waits for
// the reader or ctx. Run leaves no goroutine behind; only one Run per
// Session may run at a time (ErrRunning).
func (s *Session) Run(ctx context.Context, events chan<- Event) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)
	r := &runner{s: s, events: events, retry: protocol.RetryMillis * time.Millisecond}
	return r.run(ctx)
}

// runner is the state of one Run.
type runner struct {
	s      *Session
	events chan<- Event
	retry  time.Duration // the server's reconnection delay
}

// outcome is how one connection ended.
type outcome struct {
	err        error
	connected  bool          // the session event arrived
	gone       bool          // the session is unknown: open a new one
	fatal      bool          // stop Run with err
	retryAfter time.Duration // from a 429/503 answer
}

func (r *runner) run(ctx context.Context) error {
	var (
		failures int   // failed tries since the last connection
		renew    error // non-nil: open a new session first (why)
	)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var out outcome
		if renew != nil {
			if err := r.renew(ctx, renew); err != nil {
				out = outcome{err: err}
				var ae *APIError
				if errors.As(err, &ae) {
					out.retryAfter = ae.RetryAfter
					out.fatal = permanent(ae.Status)
				}
			} else {
				renew = nil
			}
		}
		if renew == nil {
			if !r.state(ctx, Event{State: Connecting, Attempt: failures}) {
				return ctx.Err()
			}
			out = r.connect(ctx)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if out.fatal {
			r.s.c.log.Warn("client: stream failed", "session", protocol.ShortID(r.s.ID()), "err", out.err)
			r.state(ctx, Event{State: Failed, Attempt: failures, Err: out.err})
			return out.err
		}
		if out.gone {
			// The server answered; open the new session at once.
			renew = out.err
			continue
		}
		if out.connected {
			failures = 0
		} else {
			failures++
		}
		wait := r.delay(failures, out.retryAfter)
		r.s.c.log.Debug("client: reconnecting", "session", protocol.ShortID(r.s.ID()), "in", wait, "attempt", failures, "err", out.err)
		if !r.state(ctx, Event{State: Reconnecting, Attempt: failures, Err: out.err}) {
			return ctx.Err()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// delay is the wait before the next try: the server's retry: delay after a
// connection that worked, then doubling with up to 25 % jitter (so clients
// cut together do not return together) up to the cap, never below the
// server's delay nor a Retry-After.
func (r *runner) delay(failures int, retryAfter time.Duration) time.Duration {
	d := r.retry
	if failures > 0 {
		d = r.retry << min(failures, 16)
		if d <= 0 || d > r.s.c.maxBackoff {
			d = r.s.c.maxBackoff
		}
		d += time.Duration(rand.Int64N(int64(d)/4 + 1))
		d = max(d, r.retry)
	}
	return max(d, retryAfter)
}

// state delivers a State event; false if ctx ended first.
func (r *runner) state(ctx context.Context, ev Event) bool {
	ev.Kind = State
	return send(ctx, r.events, ev)
}

func send(ctx context.Context, events chan<- Event, ev Event) bool {
	select {
	case events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// renew opens a new session with the channels the old one had, after the
// server forgot the old one (why).
func (r *runner) renew(ctx context.Context, why error) error {
	s := r.s
	chans := s.Channels()
	created, err := s.c.create(ctx, chans)
	var ae *APIError
	if err != nil && len(chans) > 0 && errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusTooManyRequests {
		// A channel may be gone from the restarted server: open the session
		// bare and tune in what still exists.
		created, err = s.c.create(ctx, nil)
		if err == nil {
			s.mu.Lock()
			s.id = created.Session
			s.mu.Unlock()
			for _, ch := range chans {
				if got, err := s.Tune(ctx, ch, true); err == nil {
					created.Channels = got
				} else {
					s.c.log.Info("client: channel not re-tuned", "channel", ch, "err", err)
				}
			}
		}
	}
	if err != nil {
		return fmt.Errorf("client: open a new session: %w", err)
	}
	s.mu.Lock()
	old := s.id
	s.id = created.Session
	s.channels = created.Channels
	s.lastID = 0
	s.streamed = false
	s.mu.Unlock()
	s.stats.newSessions.Add(1)
	s.c.log.Info("client: new session", "old", protocol.ShortID(old), "new", protocol.ShortID(created.Session), "why", why)
	ok := r.state(ctx, Event{
		State:   NewSession,
		Err:     why,
		Session: &protocol.SessionEvent{Session: created.Session, Channels: created.Channels},
	})
	for _, t := range s.failTransfers(fmt.Errorf("%w: %v", ErrSessionLost, why), true) {
		ok = ok && send(ctx, r.events, Event{Kind: BulkDone, Name: protocol.EventBulkEnd, Transfer: t})
	}
	if !ok {
		return ctx.Err()
	}
	return nil
}

// connect makes one connection and reads it until it ends.
func (r *runner) connect(ctx context.Context) outcome {
	s := r.s
	connCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	s.mu.Lock()
	id, last, streamed := s.id, s.lastID, s.streamed
	s.mu.Unlock()

	// at: when this request was sent, so that a server never lets an
	// earlier request of ours that arrives late replace this stream
	// (PROTOCOL.md "Resuming").
	sc := sse.NewClient(s.c.base+"/events?session="+url.QueryEscape(id)+"&at="+strconv.FormatInt(time.Now().UnixMilli(), 10),
		sse.ClientMaxBufferSize(s.c.maxEvent+slack))
	sc.Connection = s.c.stream
	sc.ReconnectStrategy = noRetry{}
	if streamed {
		// Even "0": without Last-Event-ID the server continues after what
		// its previous stream wrote, which we may not have received.
		sc.Headers["Last-Event-ID"] = strconv.FormatUint(last, 10)
	}

	var idle *time.Timer
	onRead := func() {}
	if d := s.c.idleTimeout; d > 0 {
		idle = time.AfterFunc(d, func() { cancel(errIdle) })
		defer idle.Stop()
		onRead = func() { idle.Reset(d) }
	}

	h := &handler{r: r, ctx: connCtx, cancel: cancel}
	sc.ResponseValidator = func(_ *sse.Client, resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			ae := readAPIError(resp)
			resp.Body.Close()
			return ae
		}
		if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/event-stream" {
			resp.Body.Close()
			return fmt.Errorf("%w: stream has Content-Type %q", ErrProtocol, resp.Header.Get("Content-Type"))
		}
		resp.Body = newEventReader(resp.Body, s.c.maxEvent, onRead)
		h.node = resp.Header.Get("X-Xhrsse-Node")
		return nil
	}
	err := sc.SubscribeRawWithContext(connCtx, h.handle)

	out := h.out
	if out.err != nil || out.fatal || out.gone {
		return out
	}
	if cause := context.Cause(connCtx); cause != nil && ctx.Err() == nil && errors.Is(cause, errIdle) {
		err = cause
	}
	var ae *APIError
	switch {
	case err == nil:
		out.err = errStreamEnded
	case errors.As(err, &ae):
		out.err = fmt.Errorf("GET /events: %w", ae)
		out.retryAfter = ae.RetryAfter
		switch {
		case ae.Status == http.StatusNotFound:
			out.gone = true
		case ae.Status == http.StatusConflict:
			// A newer stream of the session is open, opened from further
			// on than ours: another client has it (PROTOCOL.md).
			out.fatal, out.err = true, fmt.Errorf("%w: %w", ErrReplaced, ae)
		case permanent(ae.Status):
			out.fatal = true
		}
	case errors.Is(err, ErrEventTooLarge), errors.Is(err, ErrProtocol):
		out.err, out.fatal = err, true
	default:
		out.err = err
	}
	return out
}

// permanent reports whether an answer with this status will not change by
// asking again: a 4xx other than 408 and 429. (404 on GET /events is handled
// before: it means the session is gone.)
func permanent(status int) bool {
	return status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests
}

// handler takes the events of one connection from r3labs.
type handler struct {
	r      *runner
	ctx    context.Context
	cancel context.CancelCauseFunc
	out    outcome
	node   string // X-Xhrsse-Node of the stream's answer
}

// end stops the connection after this event.
func (h *handler) end(out outcome) {
	h.out = out
	h.cancel(errStreamEnded)
}

func (h *handler) handle(e *sse.Event) {
	if h.ctx.Err() != nil {
		return // the connection is ending; r3labs may still hand over a read-ahead event
	}
	if len(e.Retry) > 0 {
		if ms, err := strconv.ParseUint(string(e.Retry), 10, 31); err == nil {
			h.r.retry = time.Duration(ms) * time.Millisecond
		}
	}
	if len(e.Data) == 0 {
		return // a comment, a retry block, or an event the spec does not dispatch
	}
	s := h.r.s
	name := string(e.Event)
	if name == "" {
		name = "message"
	}
	id, err := strconv.ParseUint(string(e.ID), 10, 64)
	if err != nil {
		h.end(outcome{fatal: true, err: fmt.Errorf("%w: event %q has id %q", ErrProtocol, name, e.ID)})
		return
	}
	ev := Event{ID: id, Name: name, Data: e.Data}

	switch name {
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

// decode fills ev by its name, feeds transfers, and delivers it; false if
// the connection ends first (the event is then not taken: a resume gets it
// again).
func (h *handler) decode(ev *Event) bool {
	s := h.r.s
	bad := func(err error) {
		ev.Kind, ev.Err = Other, fmt.Errorf("%w: %s event: %v", ErrProtocol, ev.Name, err)
	}
	switch ev.Name {
	case protocol.EventTuned:
		var t protocol.Tuned
		if err := json.Unmarshal(ev.Data, &t); err != nil {
			bad(err)
			break
		}
		s.setChannels(t.Channels)
		ev.Kind, ev.Tuned = Tuned, &t
	case protocol.EventChat:
		var c protocol.Chat
		if err := json.Unmarshal(ev.Data, &c); err != nil {
			bad(err)
			break
		}
		ev.Kind, ev.Chat = Chat, &c
	case protocol.EventGap:
		var g protocol.Gap
		if err := json.Unmarshal(ev.Data, &g); err != nil {
			bad(err)
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
		if err := json.Unmarshal(ev.Data, &c); err != nil {
			bad(err)
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
		if err := json.Unmarshal(ev.Data, &e); err != nil {
			bad(err)
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
	if err := json.Unmarshal(ev.Data, &se); err != nil {
		h.end(outcome{fatal: true, err: fmt.Errorf("%w: session event: %v", ErrProtocol, err)})
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
	if err := json.Unmarshal(ev.Data, &b); err != nil {
		h.end(outcome{connected: h.out.connected, err: fmt.Errorf("%w: bye event: %v", ErrProtocol, err)})
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
