package broadcast

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A PublishRelay carries published events between the hubs of a cluster, as
// a Relay carries chat: the relay publishes, and every hub, this one
// included, gets the event back through DeliverPublished in the relay's
// order. A Relay that is not a PublishRelay leaves publishing local.
type PublishRelay interface {
	// PublishEvent sends one event of channel to every hub and returns its
	// sequence number, which orders it among every published event. It
	// does not wait for the hub to deliver it.
	PublishEvent(ctx context.Context, channel string, data []byte) (uint64, error)
}

// recentPublished is how many published events a hub keeps for sessions that
// move in from a hub that had not delivered them yet.
const recentPublished = 256

// published is the hub's state for published channels.
type published struct {
	mu     sync.Mutex    // serialises delivery: sequence, recent and fan-out order
	seq    atomic.Uint64 // the last event delivered; written under mu and Hub.mu (read)
	recent []pubItem     // the last recentPublished events; guarded by mu
	seen   chan struct{} // guarded by mu; closed and replaced at each delivery

	events     []atomic.Int64 // per channel index: events published
	deliveries []atomic.Int64 // per channel index: events queued to sessions
}

type pubItem struct {
	seq uint64
	c   *channel
	ev  *event
}

func (p *published) init(channels int) {
	p.seen = make(chan struct{})
	p.events = make([]atomic.Int64, channels)
	p.deliveries = make([]atomic.Int64, channels)
}

// CheckPublish validates the data of one published event: valid UTF-8, no
// NUL, not empty (a client would not see an event without data), at most
// protocol.MaxPublishData bytes. Anything else is data, relayed byte for
// byte; clients display it inert.
func CheckPublish(data []byte) error {
	switch {
	case len(data) > protocol.MaxPublishData:
		return fmt.Errorf("%w: %d bytes, at most %d", ErrEventTooLarge, len(data), protocol.MaxPublishData)
	case len(data) == 0:
		return fmt.Errorf("%w: empty event data", ErrBadRequest)
	case !utf8.Valid(data):
		return fmt.Errorf("%w: event data must be valid UTF-8", ErrBadRequest)
	case bytes.IndexByte(data, 0) >= 0:
		return fmt.Errorf("%w: event data must not contain NUL", ErrBadRequest)
	}
	return nil
}

// PublishTarget says whether events may be published to the named channel:
// nil, ErrUnknownChannel or ErrNotPublished.
func (h *Hub) PublishTarget(name string) error {
	_, err := h.publishTarget(name)
	return err
}

func (h *Hub) publishTarget(name string) (*channel, error) {
	c, ok := h.byName[name]
	switch {
	case !ok:
		return nil, fmt.Errorf("%w %q", ErrUnknownChannel, name)
	case !c.Published:
		return nil, fmt.Errorf("%w: %q ticks by itself", ErrNotPublished, name)
	}
	return c, nil
}

// Publish sends one event with data to every session tuned to channel. It
// returns once the event is in the history of every session of this hub
// tuned to it; in a cluster, once the relay has it and this hub delivered it
// (or, if this hub's delivery is slow, once the relay has it: the event is
// on its way and will not be lost).
func (h *Hub) Publish(ctx context.Context, channel string, data []byte) error {
	c, err := h.publishTarget(channel)
	if err != nil {
		return err
	}
	if err := CheckPublish(data); err != nil {
		return err
	}
	if h.ctx.Err() != nil {
		return ErrClosed
	}
	if r, ok := h.opts.relay.(PublishRelay); ok {
		sctx, cancel := relaySendContext(ctx)
		defer cancel()
		seq, err := r.PublishEvent(sctx, channel, data)
		if err != nil {
			return err
		}
		h.awaitDelivery(ctx, func() (bool, <-chan struct{}) {
			h.pub.mu.Lock()
			defer h.pub.mu.Unlock()
			return h.pub.seq.Load() >= seq, h.pub.seen
		})
		return nil
	}
	h.pub.mu.Lock()
	defer h.pub.mu.Unlock()
	h.deliverPublishedLocked(h.pub.seq.Load()+1, c, data)
	return nil
}

// DeliverPublished hands an event that came through the relay to every
// session of the hub tuned to its channel. The relay calls it in the order
// of seq; a seq the hub has delivered already is ignored, and so is an
// unknown or ticking channel (a node with other channels).
func (h *Hub) DeliverPublished(seq uint64, channel string, data []byte) {
	c, err := h.publishTarget(channel)
	if err != nil {
		h.opts.logger.Warn("published event for a channel this hub does not publish", "channel", channel, "seq", seq)
		return
	}
	h.pub.mu.Lock()
	defer h.pub.mu.Unlock()
	if seq <= h.pub.seq.Load() {
		return
	}
	h.deliverPublishedLocked(seq, c, data)
}

// deliverPublishedLocked encodes the event once and appends it to every
// session tuned to c. h.pub.mu must be held.
func (h *Hub) deliverPublishedLocked(seq uint64, c *channel, data []byte) {
	body, _ := protocol.AppendBody(nil, c.Name, data) // name validated at start
	it := pubItem{seq: seq, c: c, ev: &event{body: body, at: time.Now().UnixNano()}}
	h.pub.recent = append(h.pub.recent, it)
	if len(h.pub.recent) > recentPublished {
		n := copy(h.pub.recent, h.pub.recent[len(h.pub.recent)-recentPublished:])
		clear(h.pub.recent[n:])
		h.pub.recent = h.pub.recent[:n]
	}
	var n int64
	h.mu.RLock()
	for s := range h.subs[c.index] {
		if s.pushPublished(it) {
			n++
		}
	}
	// Under Hub.mu: a session exported now (Export holds it for writing)
	// has had every event up to seq, and only those.
	h.pub.seq.Store(seq)
	h.mu.RUnlock()
	close(h.pub.seen)
	h.pub.seen = make(chan struct{})
	h.pub.events[c.index].Add(1)
	h.pub.deliveries[c.index].Add(n)
}

// pushPublished appends a published event s has not had (one that came from
// another hub may have) and reports whether it did.
func (s *Session) pushPublished(it pubItem) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone || it.seq <= s.lastPub {
		return false
	}
	s.lastPub = it.seq
	s.appendLocked(it.ev)
	if s.stream != nil {
		s.stream.wake()
	}
	return true
}

// adoptPublishedLocked brings a session that joins the hub up to date: a new
// one starts after the last event delivered; one that moved in from another
// hub gets the events of its channels that hub had not delivered yet when it
// let the session go (from the recent ones). h.pub.mu and s.mu must be held.
func (h *Hub) adoptPublishedLocked(s *Session, mask uint64, isNew bool) {
	if !isNew {
		for _, it := range h.pub.recent {
			if it.seq > s.lastPub && mask&(1<<it.c.index) != 0 {
				s.ring.push(it.ev, &h.opts)
			}
		}
	}
	s.lastPub = max(s.lastPub, h.pub.seq.Load())
}

// publishedSnapshot adds the published channels' counters to snap.
func (h *Hub) publishedSnapshot(snap *Snapshot) {
	snap.Published, snap.PublishDeliveries = map[string]int64{}, map[string]int64{}
	for _, c := range h.channels {
		if c.Published {
			snap.Published[c.Name] = h.pub.events[c.index].Load()
			snap.PublishDeliveries[c.Name] = h.pub.deliveries[c.index].Load()
		}
	}
}
