package broadcast

import (
	"context"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A Relay joins a hub to the other hubs of a cluster (pkg/cluster).
//
// Chat goes through it, so that every hub delivers every message, in one
// order, with one id: the relay publishes, and each hub, this one included,
// gets the message back through Deliver. Sessions stay on one hub at a time;
// the relay is told of every change another hub would need to take a session
// over after this one died (its channels, the ids it may have used) and of
// its end.
type Relay interface {
	// PublishChat sends msg (its ID unset) to every hub and returns the id
	// the cluster gave it. It does not wait for the hub to deliver it.
	PublishChat(ctx context.Context, msg protocol.Chat) (int64, error)

	// SessionChanged is told of a change to a session. It is called with
	// the hub's locks held, so it must not block or call the hub.
	SessionChanged(c SessionChange)
}

// A SessionChange is what a relay hears of a session.
type SessionChange struct {
	ID       string
	Channels []string // tuned now
	// Reserved is an id above every id the session has used or will use
	// before the next change: a hub that takes the session over after
	// this one died starts there, after a gap.
	Reserved uint64
	Gone     bool // the session ended (expired or dropped), not moved
}

// reserveBlock is how many ids a session reserves at a time: one relay
// message per that many events.
const reserveBlock = 4096

// Through a relay, a chat message or a published event goes to the broker
// first and comes back to every hub, the sender's too; its sender is
// answered once its own hub has delivered it.
const (
	// relaySendTimeout bounds the broker's answer.
	relaySendTimeout = 10 * time.Second
	// relayDeliverWait bounds the wait for the hub's own delivery: past it
	// (a stalled delivery), the sender is answered anyway, since what the
	// broker has is on its way and will not be lost.
	relayDeliverWait = 5 * time.Second
)

// relaySendContext is the context of a send to the relay. The client going
// away does not cut it short: once the broker has the message, nothing may
// turn it into a refusal.
func relaySendContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), relaySendTimeout)
}

// awaitDelivery waits until the hub has delivered what it sent through the
// relay, for at most relayDeliverWait, and not past the end of ctx or of
// the hub. delivered reports whether it has, and returns the channel that
// the hub's next delivery closes.
func (h *Hub) awaitDelivery(ctx context.Context, delivered func() (bool, <-chan struct{})) {
	ctx, cancel := context.WithTimeout(ctx, relayDeliverWait)
	defer cancel()
	for {
		done, next := delivered()
		if done {
			return
		}
		select {
		case <-next:
		case <-ctx.Done():
			return
		case <-h.ctx.Done():
			return
		}
	}
}
