package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// claimHere is claim under the session's lock on this node.
func (n *Node) claimHere(ctx context.Context, id string) (*broadcast.Session, error) {
	return n.locked(ctx, id, func(_, ctx context.Context) (*broadcast.Session, error) {
		return n.claim(ctx, id)
	})
}

var errTryAgain = errors.New("try again")

// claim makes a session whose node stopped answering live here, from its
// record. It does not if the record is gone (the session ended), if its node
// still answers on the broker (it is only slow, or re-subscribing after the
// broker came back), or if another node claimed it first.
func (n *Node) claim(ctx context.Context, id string) (*broadcast.Session, error) {
	rec, rev, found, err := n.readRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, broadcast.ErrUnknownSession
	}
	// The recorded node may be alive: still holding the session (it is
	// re-subscribing after the broker came back, say), handing it over
	// this moment, or just done with it. Only a node that is gone, or that
	// knows nothing of the session, lets it be recovered.
	where := unknown
	if rec.Node == n.cfg.Node {
		where = n.whereIs(key(id))
	} else {
		var err error
		if where, err = n.askNode(ctx, rec.Node, id); err != nil {
			return nil, err
		}
	}
	n.log.Debug("claim", "session", protocol.ShortID(id), "recorded", rec.Node, "where", where)
	switch where {
	case held, moving:
		return nil, errTryAgain
	case ended:
		return nil, broadcast.ErrUnknownSession
	}
	mine := rec
	mine.Node = n.cfg.Node
	data, _ := json.Marshal(mine)
	uctx, unlink := n.onLink(ctx)
	_, err = n.kv.Update(uctx, key(id), data, rev)
	unlink()
	if err != nil {
		return nil, errTryAgain // somebody else changed it, or the broker went: look again
	}
	// Chat and published events the client may have had from the lost
	// node must not come again, though this node may deliver them after
	// the lost one did: the session starts after the last of each the
	// broker has.
	var lastChat int64
	if info, err := n.chatStream.Info(ctx); err == nil {
		lastChat = int64(info.State.LastSeq)
	}
	var lastPub uint64
	if info, err := n.pubStream.Info(ctx); err == nil {
		lastPub = info.State.LastSeq
	}
	s, err := n.hub.Recover(id, rec.Channels, rec.Reserved, lastChat, lastPub)
	if err != nil {
		return nil, fmt.Errorf("cluster: recover: %w", err)
	}
	if err := n.register(ctx, s, true); err != nil {
		n.release(id)
		return nil, err
	}
	n.metrics.recovered.Inc()
	n.log.Info("session recovered from a lost node", "session", protocol.ShortID(id), "lost", rec.Node)
	return s, nil
}

// askNode asks node where session id is. A node that has no responder is
// asked again for Claim: a node whose broker died is away for a moment
// while it reconnects to another, and one cut off for longer parks its
// sessions (partition.go) before this gives up on it.
//
// The node answers from memory at once, so a question unanswered for
// nodeQueryWait was lost (with a broker that died holding it, or on a
// connection lost meanwhile), and is asked again, up to requestTimeout in
// all: the question changes nothing, and waiting requestTimeout for a
// lost one held a take, and the session's lock, all that time.
func (n *Node) askNode(ctx context.Context, node, id string) (string, error) {
	start := time.Now()
	var silent time.Time // since when every question found no responder
	for {
		sent := time.Now()
		pctx, cancel := context.WithTimeout(ctx, nodeQueryWait)
		pctx, unlink := n.onLink(pctx)
		m, err := n.nc.RequestWithContext(pctx, n.nodeSubject(node), []byte(key(id)))
		unlink()
		cancel()
		switch {
		case err == nil:
			return string(m.Data), nil
		case ctx.Err() == nil && time.Since(start) < requestTimeout &&
			(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)):
			// Lost, not unanswered: the node may be there. Ask again,
			// and count its silence afresh.
			silent = time.Time{}
			continue
		case !errors.Is(err, nats.ErrNoResponders):
			return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if silent.IsZero() {
			silent = sent
		}
		if time.Since(silent) >= n.cfg.Claim {
			return unknown, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// nodeQueryWait bounds the wait for a node's answer to where a session is.
const nodeQueryWait = time.Second

// release removes a session that could not be made reachable here from the
// hub, leaving its record: another node may recover it from there later.
// (Hub.Drop would end the session everywhere.)
func (n *Node) release(id string) {
	_, _ = n.hub.Export(id, 0, broadcast.Position{})
}
