package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// Take brings session id to this node for a stream that arrived here: its
// node hands it over, history and all; if that node died, it is recovered
// from its record. broadcast.ErrUnknownSession if no node has it;
// broadcast.ErrSuperseded if the stream's request (at p) came late.
func (n *Node) Take(ctx context.Context, id string, p broadcast.Position) (*broadcast.Session, error) {
	start := time.Now()
	s, err := n.locked(ctx, id, func(origin, ctx context.Context) (*broadcast.Session, error) {
		return n.take(origin, ctx, id, p)
	})
	if err != nil {
		n.log.Debug("take failed", "session", protocol.ShortID(id), "after", time.Since(start), "err", err)
	}
	return s, err
}

func (n *Node) take(origin, ctx context.Context, id string, p broadcast.Position) (*broadcast.Session, error) {
	req := request{Op: "take", Key: key(id), LastID: p.LastID, SentAt: p.SentAt, TakeID: newID()}
	inbox, err := n.newInbox()
	if err != nil {
		return nil, err
	}
	defer inbox.Unsubscribe()
	for tries, again := 0, 0; tries < 3; {
		if tries+again > 0 {
			origin = ctx // asked already: see it through
		}
		rep, found, err := n.ask(origin, ctx, inbox, req)
		if (errors.Is(err, errLinkLost) && n.awaitLink(ctx) || errors.Is(err, errNoReply)) && again < 3 {
			// The take may have been answered, the session handed over,
			// and the reply lost with a broker (this node's, or the old
			// node's): asked again under the same take id within linger,
			// the old node sends it again.
			again++
			continue
		}
		tries++
		if err != nil {
			return nil, err
		}
		if found && rep.Superseded {
			return nil, broadcast.ErrSuperseded
		}
		if found {
			if rep.State == nil {
				return nil, errors.New("cluster: take answered without a state")
			}
			rep.State.ID = id
			n.adoptRuns(req.Key, rep.Ran)
			n.fillChat(ctx, rep.State)
			s, err := n.hub.Import(*rep.State)
			if err != nil {
				// Lost until a node recovers it from its record.
				n.log.Warn("session taken but not imported", "session", protocol.ShortID(id), "err", err)
				return nil, fmt.Errorf("cluster: import: %w", err)
			}
			n.forgetParked(id)
			if err := n.register(ctx, s, true); err != nil {
				n.log.Warn("session taken but not registered", "session", protocol.ShortID(id), "err", err)
				n.release(id)
				return nil, err
			}
			n.metrics.taken.Inc()
			n.log.Debug("session taken over", "session", protocol.ShortID(id))
			return s, nil
		}
		s, err := n.claim(ctx, id)
		if errors.Is(err, errTryAgain) {
			// Given up on the old node: a reply it kept for this take
			// must not be taken now (the session may be elsewhere).
			req.TakeID = newID()
			continue
		}
		return s, err
	}
	return nil, fmt.Errorf("%w: session is moving between nodes", ErrUnavailable)
}

// takeTimeout bounds the wait for a take's reply: the old node answers at
// once but for a record write under way (recordWait). Well within linger,
// so that a take asked again after a lost reply finds the reply kept.
const takeTimeout = recordWait + time.Second

// newID names one take or forwarded request.
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// lock lets one take or claim of a session run on this node at a time. It
// returns the session instead when another one brought it here meanwhile.
func (n *Node) lock(ctx context.Context, id string) (release func(), s *broadcast.Session) {
	k := key(id)
	for {
		if s, ok := n.hub.Session(id); ok {
			return nil, s
		}
		n.mu.Lock()
		busy, ok := n.taking[k]
		if !ok {
			done := make(chan struct{})
			n.taking[k] = done
			n.mu.Unlock()
			return func() {
				n.mu.Lock()
				delete(n.taking, k)
				n.mu.Unlock()
				close(done)
			}, nil
		}
		n.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, nil
		}
	}
}

// locked runs bring, which brings session id here, under the session's lock
// on this node, unless the session is here already. bring gets the client's
// context, origin, and one detached from it: once it has asked for the
// session, it runs to the end even if the client leaves, since the old node
// lets the session go when asked and it must land here or be nowhere.
func (n *Node) locked(ctx context.Context, id string, bring func(origin, detached context.Context) (*broadcast.Session, error)) (*broadcast.Session, error) {
	release, s := n.lock(ctx, id)
	if s != nil {
		return s, nil
	}
	if release == nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	}
	defer release()
	// Parked here, with the broker back and the node not done settling:
	// settle it now, its client is waiting. Else the take would ask the
	// other nodes, and none has it.
	switch how, err := n.bringHome(id); {
	case err != nil:
		return nil, err
	case how == settledHome:
		if s, ok := n.hub.Session(id); ok {
			return s, nil
		}
	}
	// Its old node lets the session go when asked: bring it only if it can
	// land here. (Import and Recover never refuse it, for the moment between
	// this check and its arrival, while the hub starts closing, say.)
	if err := n.hub.Room(); err != nil {
		return nil, err
	}
	detached, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*requestTimeout)
	defer cancel()
	// Detached from its client, not from the node: it ends when the node does.
	stop := context.AfterFunc(n.ctx, cancel)
	defer stop()
	return bring(ctx, detached)
}
