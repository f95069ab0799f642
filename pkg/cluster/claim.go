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
	n.forgetParked(id)
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
// sessions (partition.go) before this gives up on it. A question nobody
// answered is asked again every resend, as a request is (exchange): the
// node may have connected again after its connection went silent, and the
// broker sent the first to the silent one.
func (n *Node) askNode(ctx context.Context, node, id string) (string, error) {
	inbox, err := n.newInbox()
	if err != nil {
		return "", err
	}
	defer inbox.Unsubscribe()
	subject, data := n.nodeSubject(node), []byte(key(id))
	// Only "no responder" counts toward Claim, from the first of a run of
	// them: time spent on questions lost on the way says nothing of the
	// node, and must not shorten its time to come back.
	var silent time.Time
	for {
		where, err := n.query(ctx, inbox, subject, data)
		switch {
		case err == nil:
			return where, nil
		case !errors.Is(err, nats.ErrNoResponders):
			return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if silent.IsZero() {
			silent = time.Now()
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

// query sends data on subject, replies to inbox, every resend until a
// reply comes, for up to requestTimeout.
func (n *Node) query(ctx context.Context, inbox *nats.Subscription, subject string, data []byte) (string, error) {
	qctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	for {
		if err := n.nc.PublishRequest(subject, inbox.Subject, data); err != nil {
			return "", err
		}
		wctx, wcancel := context.WithTimeout(qctx, resend)
		m, err := inbox.NextMsgWithContext(wctx)
		wcancel()
		switch {
		case err == nil:
			return string(m.Data), nil
		case qctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded):
			return "", err
		}
	}
}

// release removes a session that could not be made reachable here from the
// hub, leaving its record: another node may recover it from there later.
// (Hub.Drop would end the session everywhere.)
func (n *Node) release(id string) {
	_, _ = n.hub.Export(id, 0, broadcast.Position{})
}
