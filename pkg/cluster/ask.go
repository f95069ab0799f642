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
// holding it. While nobody answers, or only the old node of a session that
// moved a moment ago ("moved"), it asks again, for up to Claim; then found
// is false, and claim decides, from the session's record and its node's
// word, whether the session is moving (ask again later) or lost (recover
// it). A "moved" alone decides nothing: the new node may have died since.
//
// origin is the context of the client's request: once it ends, no new
// request is sent (a take asked for by a client that left would move the
// session away from where that client is now), but one sent is waited for
// under ctx.
func (n *Node) ask(origin, ctx context.Context, req request) (rep reply, found bool, err error) {
	data, _ := json.Marshal(req)
	subject := n.sessionSubject(req.Key)
	deadline := time.Now().Add(n.cfg.Claim)
	for try, wait := 1, 5*time.Millisecond; ; try, wait = try+1, min(2*wait, 100*time.Millisecond) {
		if origin.Err() != nil {
			return reply{}, false, fmt.Errorf("%w: the client left: %v", ErrUnavailable, origin.Err())
		}
		link := n.linkContext()
		timeout := requestTimeout
		if req.Op == "take" {
			timeout = takeTimeout
		}
		rctx, cancel := context.WithTimeout(ctx, timeout)
		stop := context.AfterFunc(link, cancel)
		m, err := n.nc.RequestWithContext(rctx, subject, data)
		stop()
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && link.Err() != nil:
			return reply{}, false, fmt.Errorf("%w: %w: %v", ErrUnavailable, errLinkLost, err)
		case err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
			return reply{}, false, fmt.Errorf("%w: %w", ErrUnavailable, errNoReply)
		case err == nil:
			rep = reply{} // Unmarshal keeps fields the new reply omits
			if err := json.Unmarshal(m.Data, &rep); err != nil {
				return reply{}, false, fmt.Errorf("cluster: bad reply: %w", err)
			}
			if !rep.Moved {
				return rep, true, nil
			}
		case errors.Is(err, nats.ErrNoResponders):
		default:
			return reply{}, false, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		// Enough tries, not only enough time: on a busy machine a few slow
		// round trips must not pass for a dead node.
		if time.Now().After(deadline) && try >= 8 {
			return reply{}, false, nil
		}
		select {
		case <-ctx.Done():
			return reply{}, false, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// awaitLink waits up to requestTimeout for the connection to the broker to
// be back, and reports whether it is.
func (n *Node) awaitLink(ctx context.Context) bool {
	deadline := time.Now().Add(requestTimeout)
	for !n.nc.IsConnected() {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return true
}
