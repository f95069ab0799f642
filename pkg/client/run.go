package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

var (
	errIdle        = errors.New("client: stream idle too long")
	errNoAnswer    = errors.New("client: stream not answered in time")
	errStreamEnded = errors.New("client: stream ended")
)

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
	u := s.c.base + "/events?session=" + url.QueryEscape(id) + "&at=" + strconv.FormatInt(time.Now().UnixMilli(), 10)
	lastID := ""
	if streamed {
		// Even "0": without Last-Event-ID the server continues after what
		// its previous stream wrote, which we may not have received.
		lastID = strconv.FormatUint(last, 10)
	}

	onRead, stop := s.c.watchSilence(cancel)
	defer stop()

	h := &handler{r: r, ctx: connCtx, cancel: cancel}
	err := s.c.subscribe(connCtx, u, lastID, onRead, h)

	out := h.out
	if out.err != nil || out.fatal || out.gone {
		return out
	}
	if cause := context.Cause(connCtx); cause != nil && ctx.Err() == nil && (errors.Is(cause, errIdle) || errors.Is(cause, errNoAnswer)) {
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

// watchSilence ends a connection (cancel) whose answer does not come within
// the connect timeout, or whose stream then says nothing for the idle
// timeout. The idle limit counts from the answer's head, not from the
// request: a server may take a while to answer a stream whose session it
// first takes over from another node of a cluster, and a client that gave
// up on that take at its idle limit would only send its session on to be
// taken again elsewhere. onRead is to be called for the head and for every
// read of the body; stop ends the watch.
func (c *Client) watchSilence(cancel context.CancelCauseFunc) (onRead, stop func()) {
	connect, idle := c.connTimeout, c.idleTimeout
	if connect <= 0 && idle <= 0 {
		return func() {}, func() {}
	}
	var (
		mu     sync.Mutex
		opened bool // guarded by mu: the head came
	)
	t := time.AfterFunc(max(connect, 0), func() {
		mu.Lock()
		defer mu.Unlock()
		if opened {
			cancel(errIdle)
		} else {
			cancel(errNoAnswer)
		}
	})
	if connect <= 0 {
		t.Stop() // no limit until the head
	}
	onRead = func() {
		mu.Lock()
		defer mu.Unlock()
		opened = true
		if idle > 0 {
			t.Reset(idle)
		} else {
			t.Stop()
		}
	}
	return onRead, func() { t.Stop() }
}
