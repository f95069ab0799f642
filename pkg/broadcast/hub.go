package broadcast

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
	"golang.org/x/time/rate"
)

// A Hub runs the channels and holds the sessions. It is safe for concurrent
// use. Close it to stop its goroutines and end every stream with bye.
type Hub struct {
	opts     options
	channels []*channel
	tickers  []*channel // the channels that tick, for the clock
	byName   map[string]*channel
	root     *os.Root // nil without a files dir

	ctx    context.Context // done when the hub closes
	cancel context.CancelFunc
	wg     sync.WaitGroup // clock, sweeper and wheel goroutines
	wheel  *flushWheel    // the streams' flush interval; nil without one
	urgent urgentGate     // chat fan-outs under way, which the wheel and ticks let go first

	mu       sync.RWMutex            // guards sessions and subs; held to cancel ctx (Close)
	sessions map[string]*Session     // guarded by mu
	subs     []map[*Session]struct{} // per channel index; guarded by mu
	streams  atomic.Int64            // open streams
	streamWG sync.WaitGroup          // stream writers, for Close

	chat chatLog   // chat messages (chat.go)
	pub  published // published channels' events (publish.go)

	seed     [32]byte // of the ticks (clock.go)
	bulkSeed [32]byte // generated bulk data: one stream per hub
	sums     sumCache // sha256 of generated transfers by size

	stats counters
}

// New starts a hub with its clock, its sweeper and, with a flush interval,
// its flush wheel, each a goroutine that Close stops.
func New(opts ...Option) (*Hub, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	h := &Hub{
		opts:     o,
		byName:   make(map[string]*channel),
		sessions: make(map[string]*Session),
	}
	for i, cfg := range o.channels {
		w, err := cfg.validate()
		if err != nil {
			return nil, err
		}
		if _, dup := h.byName[cfg.Name]; dup {
			return nil, fmt.Errorf("broadcast: channel %q twice", cfg.Name)
		}
		c := &channel{ChannelConfig: cfg, index: i, width: w}
		h.channels = append(h.channels, c)
		if !cfg.Published {
			h.tickers = append(h.tickers, c)
		}
		h.byName[cfg.Name] = c
		h.subs = append(h.subs, make(map[*Session]struct{}))
	}
	h.stats.init(len(h.channels))
	h.chat.init()
	h.pub.init(len(h.channels))
	h.seed = o.seed
	if o.seed == ([32]byte{}) {
		_, _ = rand.Read(h.seed[:]) // never fails
	}
	// Bulk data comes from the same seed, so the nodes of a cluster send
	// the same bytes for the same transfer, but not the same bytes as ticks.
	h.bulkSeed = sha256.Sum256(append([]byte("xhrsse bulk\x00"), h.seed[:]...))
	if o.filesDir != "" {
		root, err := os.OpenRoot(o.filesDir)
		if err != nil {
			return nil, fmt.Errorf("broadcast: files dir: %w", err)
		}
		h.root = root
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	if o.flushInterval > 0 { // before the clock, which hands it streams
		h.wheel = newFlushWheel(o.flushInterval)
		h.wg.Go(func() { h.wheel.run(h.ctx, &h.urgent) })
	}
	h.wg.Go(func() { h.clock(h.ctx) })
	h.wg.Go(h.sweep)
	return h, nil
}

// Close stops the channels, ends every stream with a bye event and waits for
// the stream writers to return (or ctx to end).
func (h *Hub) Close(ctx context.Context) error {
	// Under h.mu, so that no stream attaches after the wait below began
	// (attach checks the hub's context under h.mu too).
	h.mu.Lock()
	h.cancel()
	h.mu.Unlock()
	done := make(chan struct{})
	go func() { // Close's; if ctx ends first, it returns when the streams do
		h.wg.Wait()
		h.streamWG.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("broadcast: close: %w", ctx.Err())
	}
	if h.root != nil {
		h.root.Close()
	}
	return err
}

// Done is closed when the hub starts closing.
func (h *Hub) Done() <-chan struct{} { return h.ctx.Done() }

// Channels describes the hub's channels in order.
func (h *Hub) Channels() []protocol.Channel {
	out := make([]protocol.Channel, len(h.channels))
	for i, c := range h.channels {
		out[i] = c.info()
	}
	return out
}

// Files lists what bulk can send by name (empty without a files dir).
func (h *Hub) Files() ([]protocol.File, error) {
	if h.root == nil {
		return []protocol.File{}, nil
	}
	return listFiles(h.opts.filesDir)
}

// NewSession opens a session tuned to channels. Its history starts with the
// chat history, so its first stream shows the last messages.
func (h *Hub) NewSession(channels []string) (*Session, error) {
	if h.ctx.Err() != nil {
		return nil, ErrClosed
	}
	mask, err := h.mask(channels)
	if err != nil {
		return nil, err
	}
	s := h.newSession(newSessionID())
	if err := h.adopt(s, mask, true); err != nil {
		return nil, err
	}
	return s, nil
}

// newSession makes a session of h, not yet in its table: adopt adds it.
func (h *Hub) newSession(id string) *Session {
	s := &Session{id: id, hub: h, ring: newRing(), detachedAt: time.Now()}
	s.chat = rate.NewLimiter(rate.Limit(h.opts.chatRate), h.opts.chatBurst)
	return s
}

// adopt adds a session to the hub, tuned to mask, with the chat messages it
// is missing: a new session gets the history as such ("history":true); one
// that comes from another hub gets the messages sent while it moved, live.
//
// A session that moves in (not new) is never refused: by the time it gets
// here its old hub has let it go, so refusing it would lose it. Callers ask
// Room first; past that, a hub that began closing keeps it for its hand-over
// (its streams get ErrClosed, and the next take moves it on), and a hub at
// its cap goes over by the few sessions that were on their way in.
func (h *Hub) adopt(s *Session, mask uint64, isNew bool) error {
	if isNew && h.ctx.Err() != nil {
		return ErrClosed
	}
	h.chat.mu.Lock()
	defer h.chat.mu.Unlock()
	h.pub.mu.Lock()
	defer h.pub.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, dup := h.sessions[s.id]; dup {
		return fmt.Errorf("%w: session is here already", ErrBadRequest)
	}
	if isNew && len(h.sessions) >= h.opts.maxSessions {
		return ErrTooManySessions
	}
	s.mu.Lock()
	history := h.chat.history
	if isNew {
		history = history[max(0, len(history)-protocol.ChatHistory):]
	}
	for _, it := range history {
		if it.id > s.lastChat {
			ev := it.live
			if isNew {
				ev = it.replay
			}
			s.lastChat = it.id
			s.ring.push(ev, &h.opts)
		}
	}
	h.adoptPublishedLocked(s, mask, isNew)
	s.mu.Unlock()
	h.sessions[s.id] = s
	h.setMaskLocked(s, mask)
	s.mu.Lock()
	s.reserveLocked(true)
	s.mu.Unlock()
	h.stats.sessionsOpened.Add(1)
	return nil
}

// Session finds a live session by id.
func (h *Hub) Session(id string) (*Session, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	s, ok := h.sessions[id]
	return s, ok
}

// SessionCount is the number of live sessions.
func (h *Hub) SessionCount() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.sessions)
}

// Room says whether the hub would take one more session: ErrClosed once it
// began closing, ErrTooManySessions at its cap. A cluster asks before it
// moves a session here (Import and Recover themselves never refuse one).
func (h *Hub) Room() error {
	if h.ctx.Err() != nil {
		return ErrClosed
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if len(h.sessions) >= h.opts.maxSessions {
		return ErrTooManySessions
	}
	return nil
}

// StreamCount is the number of open streams.
func (h *Hub) StreamCount() int { return int(h.streams.Load()) }

// mask turns channel names into a tuned set.
func (h *Hub) mask(names []string) (uint64, error) {
	var m uint64
	for _, n := range names {
		c, ok := h.byName[n]
		if !ok {
			return 0, fmt.Errorf("%w %q", ErrUnknownChannel, n)
		}
		m |= 1 << c.index
	}
	return m, nil
}

func (h *Hub) names(mask uint64) []string {
	out := []string{}
	for _, c := range h.channels {
		if mask&(1<<c.index) != 0 {
			out = append(out, c.Name)
		}
	}
	return out
}

// setMaskLocked moves s between listener sets. h.mu must be held for writing.
func (h *Hub) setMaskLocked(s *Session, mask uint64) {
	s.mu.Lock()
	old := s.tuned
	s.tuned = mask
	s.mu.Unlock()
	for _, c := range h.channels {
		bit := uint64(1) << c.index
		switch {
		case mask&bit != 0 && old&bit == 0:
			h.subs[c.index][s] = struct{}{}
		case mask&bit == 0 && old&bit != 0:
			delete(h.subs[c.index], s)
		}
	}
}

// sweep removes sessions that have had no stream for the TTL.
// Runs in its own goroutine until the hub closes.
func (h *Hub) sweep() {
	every := min(max(h.opts.sessionTTL/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case now := <-t.C:
			h.expire(now)
		}
	}
}

// Drop removes a session at once, as if its TTL had run out. A stream still
// attached ends with bye "expired".
func (h *Hub) Drop(s *Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expireLocked(s)
}

// expire removes the sessions that have had no stream for the TTL.
func (h *Hub) expire(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.sessions {
		s.mu.Lock()
		dead := s.stream == nil && now.Sub(s.detachedAt) > h.opts.sessionTTL
		s.mu.Unlock()
		if dead {
			// No stream can attach meanwhile: that takes h.mu.
			h.expireLocked(s)
		}
	}
}

// expireLocked ends s for good: its stream, if any, ends with bye
// "expired", and the relay hears that it is gone. A session gone already
// (expired, or exported to another hub) is left alone. h.mu must be held
// for writing.
func (h *Hub) expireLocked(s *Session) {
	s.mu.Lock()
	gone := s.gone
	s.gone = true
	if st := s.stream; st != nil {
		st.end = protocol.ByeExpired
		st.wake()
	}
	s.mu.Unlock()
	if gone {
		return
	}
	delete(h.sessions, s.id)
	h.setMaskLocked(s, 0)
	h.stats.sessionsExpired.Add(1)
	if r := h.opts.relay; r != nil {
		r.SessionChanged(SessionChange{ID: s.id, Gone: true})
	}
}

func newSessionID() string {
	var b [protocol.SessionIDBytes]byte
	_, _ = rand.Read(b[:]) // never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}
