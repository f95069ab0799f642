package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// requestTimeout bounds one request to another node: a forwarded chat waits
// for its delivery, at most 5 s (broadcast.Hub.Chat), plus the trip.
const requestTimeout = 10 * time.Second

// errNoReply says a request's reply did not come in time.
var errNoReply = errors.New("no reply")

// errLinkLost says the connection to the broker was lost while a request
// waited for its reply.
var errLinkLost = errors.New("broker connection lost")

// ask sends req on the session's subject and returns the reply of the node
// holding it. Every node subscribed to the subject gets the request (no
// queue group): the session's node answers, old nodes it left a moment ago
// answer "moved", and a subscription the broker still keeps for a
// connection that went silent answers nothing, but takes nothing from the
// others either. While nobody answers, or only "moved" (the session is
// between nodes), it asks again, for up to Claim; then found is false, and
// claim decides, from the session's record and its node's word, whether
// the session is moving (ask again later) or lost (recover it). A "moved"
// alone decides nothing: the new node may have died since.
//
// origin is the context of the client's request: once it ends, no new
// request is sent (a take asked for by a client that left would move the
// session away from where that client is now), but one sent is waited for
// under ctx; and a take, once sent, is seen through: a node that said it
// held the session too late, after a "moved" from another, may be handing
// it over to this one.
//
// The replies come to inbox (newInbox), one for every copy and every ask
// of one request: a late answer to an earlier copy is as good as one to
// the last, and a take handed over late must not be handed to nobody.
func (n *Node) ask(origin, ctx context.Context, inbox *nats.Subscription, req request) (rep reply, found bool, err error) {
	req.From = n.cfg.Node
	data, _ := json.Marshal(req)
	subject := n.sessionSubject(req.Key)
	deadline := time.Now().Add(n.cfg.Claim)
	for try, wait := 1, 5*time.Millisecond; ; try, wait = try+1, min(2*wait, 100*time.Millisecond) {
		if origin.Err() != nil && (req.Op != "take" || try == 1) {
			return reply{}, false, fmt.Errorf("%w: the client left: %v", ErrUnavailable, origin.Err())
		}
		timeout := requestTimeout
		if req.Op == "take" {
			timeout = takeTimeout
		}
		rep, out, err := n.exchange(ctx, inbox, subject, data, timeout)
		switch out {
		case answered:
			return rep, true, nil
		case linkLost:
			return reply{}, false, fmt.Errorf("%w: %w: %v", ErrUnavailable, errLinkLost, err)
		case noReply:
			return reply{}, false, fmt.Errorf("%w: %w", ErrUnavailable, errNoReply)
		case failed:
			return reply{}, false, err
		}
		pause := wait
		if out == wentOn {
			pause = 0 // the grace after a "moved" was the wait
		}
		// Enough tries, not only enough time: on a busy machine a few slow
		// round trips must not pass for a dead node.
		if time.Now().After(deadline) && try >= 8 {
			return reply{}, false, nil
		}
		select {
		case <-ctx.Done():
			return reply{}, false, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
		case <-time.After(pause):
		}
	}
}

// newInbox subscribes to a new inbox for the replies to one request (ask).
// Unsubscribe it when done.
func (n *Node) newInbox() (*nats.Subscription, error) {
	inbox, err := n.nc.SubscribeSync(n.nc.NewInbox())
	if err != nil {
		return nil, fmt.Errorf("%w: subscribe: %v", ErrUnavailable, err)
	}
	return inbox, nil
}

// What one exchange came to.
type outcome int

const (
	answered outcome = iota // a node holding the session answered
	nobody                  // no responder, or only "moved" at once
	wentOn                  // only "moved", and no better answer within grace
	noReply                 // nothing in time
	linkLost                // the connection to the broker was lost
	failed                  // ctx ended, or a bad reply
)

const (
	// grace is how long a "moved" waits for another node's answer, or its
	// word that it holds the session (Held): every node sends that word at
	// once, so only a busy node takes longer, and a copy sent again to it
	// after the grace is not run twice (once).
	grace = 100 * time.Millisecond
	// resend is how often a request that nobody has replied to is sent
	// again within its timeout: a node that lost its broker connection
	// and made a new one gets a copy on the new one.
	resend = 500 * time.Millisecond
)

// exchange sends data on subject, replies to inbox, and waits up to timeout
// for the answer of a node holding the session, sending it again every
// resend while no node has replied. A node's word that it holds the session
// starts the timeout again: the answer follows once it has run the request.
func (n *Node) exchange(ctx context.Context, inbox *nats.Subscription, subject string, data []byte, timeout time.Duration) (reply, outcome, error) {
	link := n.linkContext()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(link, cancel)
	defer stop()
	lost := func(err error) (reply, outcome, error) {
		switch {
		case ctx.Err() != nil:
			return reply{}, failed, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
		case link.Err() != nil:
			return reply{}, linkLost, err
		}
		return reply{}, noReply, err
	}
	send := func() error {
		if err := n.nc.PublishRequest(subject, inbox.Subject, data); err != nil {
			if linkDown(err) || errors.Is(err, nats.ErrConnectionClosed) {
				return err
			}
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return nil
	}
	if err := send(); err != nil {
		return lost(err)
	}
	held := map[string]bool{} // nodes that said they hold the session
	var moved, heard bool
	now := time.Now()
	deadline, next := now.Add(timeout), now.Add(resend)
	for {
		until := deadline
		switch {
		case moved && len(held) == 0:
			until = earlier(until, time.Now().Add(grace))
		case !heard:
			until = earlier(until, next)
		}
		wctx, wcancel := context.WithDeadline(lctx, until)
		m, err := inbox.NextMsgWithContext(wctx)
		wcancel()
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			if !moved && len(held) == 0 {
				return reply{}, nobody, nil
			}
			continue // a copy sent before the others' subscriptions
		case err != nil && lctx.Err() != nil:
			return lost(err)
		case err != nil && !errors.Is(err, context.DeadlineExceeded):
			return reply{}, failed, fmt.Errorf("%w: %v", ErrUnavailable, err)
		case err != nil && !time.Now().Before(deadline):
			return lost(err)
		case err != nil && moved && len(held) == 0:
			return reply{}, wentOn, nil
		case err != nil:
			// Nobody replied within resend: send it again.
			if err := send(); err != nil {
				return lost(err)
			}
			next = time.Now().Add(resend)
			continue
		}
		var rep reply
		if err := json.Unmarshal(m.Data, &rep); err != nil {
			return reply{}, failed, fmt.Errorf("cluster: bad reply: %w", err)
		}
		heard = true
		switch {
		case rep.Held:
			held[rep.Node] = true
			deadline = time.Now().Add(timeout)
		case rep.Moved:
			delete(held, rep.Node) // it let the session go while running the request
			moved = true
		default:
			return rep, answered, nil
		}
	}
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// awaitLink waits up to requestTimeout for the connection to the broker to
// be back, and reports whether it is. It gives up at once when the node
// closes: a take's context outlives its client, not the node.
func (n *Node) awaitLink(ctx context.Context) bool {
	deadline := time.Now().Add(requestTimeout)
	for !n.nc.IsConnected() {
		if time.Now().After(deadline) || n.nc.IsClosed() {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-n.ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true
}
