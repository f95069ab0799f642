package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A node that loses every broker cannot tell whether it is alone (a
// partition: the others see the broker and no answer for its sessions, so
// after Claim they recover them) or everybody is (the brokers are down). If
// it kept serving its sessions, a partition would leave a session on two
// nodes, each numbering its events and taking its requests apart. So a node
// cut off for three quarters of Claim, before any other node may conclude
// it died, parks its sessions: it takes them off its hub (their streams end
// with bye "shutdown", and requests for them are answered 503, for want of
// a broker) and keeps their state aside. When a broker is back it returns
// each one to its hub if its record still names this node, without a gap;
// one that another node recovered meanwhile is let go (its client goes on
// there, after the gap of a recovery). Chat the node receives once back
// waits until the parked sessions are home, so none of them misses any.

// parkAfter is how long the node may be without a broker before it parks
// its sessions: below Claim, the least time after which another node may
// recover one of them (it must find the node silent for that long, askNode),
// but not so far below that a reconnect to another broker of a cluster,
// which takes a few hundred milliseconds on a busy machine, ends every
// stream of the node.
func (n *Node) parkAfter() time.Duration { return n.cfg.Claim * 3 / 4 }

// brokerLost starts the countdown to parking and notes the sessions held
// now, to be checked once a broker is back. Called by nats.go when the
// connection is lost.
func (n *Node) brokerLost() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.linkDown()
	n.link, n.linkDown = context.WithCancel(n.ctx)
	n.replies.lost()
	if n.closing {
		return
	}
	if n.suspects == nil {
		n.suspects = make(map[string]string)
	}
	for k, s := range n.subs {
		if s.retire == nil {
			n.suspects[k] = s.id
		}
	}
	if n.parkTimer == nil {
		n.parkTimer = time.AfterFunc(n.parkAfter(), n.park)
	}
}

// brokerBack stops the countdown, and brings parked sessions home and lets
// go of those another node recovered meanwhile. Called by nats.go once the
// connection is back.
func (n *Node) brokerBack() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.parkTimer != nil {
		n.parkTimer.Stop()
		n.parkTimer = nil
	}
	if !n.closing {
		n.wg.Add(1) // under mu, before Close's Wait
		go func() {
			defer n.wg.Done()
			n.resendReplies()
		}()
	}
	if len(n.suspects) > 0 && !n.closing && !n.settling {
		n.settling = true
		n.wg.Add(1) // under mu, before Close's Wait
		go func() {
			defer n.wg.Done()
			n.settle()
		}()
	}
}

// park takes every session of the hub off it and keeps its state. Runs on
// parkTimer's goroutine.
func (n *Node) park() {
	n.mu.Lock()
	if n.closing || n.nc.IsConnected() || n.parked != nil {
		n.mu.Unlock()
		return
	}
	n.parked = make(map[string]broadcast.SessionState)
	n.calm = make(chan struct{})
	n.parks.Add(1)
	var ids []string
	for k, s := range n.subs {
		if s.retire == nil {
			ids = append(ids, s.id)
			n.suspects[k] = s.id
		}
	}
	n.mu.Unlock()
	for _, id := range ids {
		// As a hand-over: a record write under way ends first.
		n.records.lock(id)
		st, err := n.hub.Withdraw(id)
		n.records.unlock(id)
		if err != nil {
			continue // it ended or left meanwhile
		}
		n.mu.Lock()
		n.parked[key(id)] = st
		delete(n.pending, id) // written again when it comes home
		n.mu.Unlock()
	}
	n.metrics.parked.Add(float64(len(ids)))
	n.log.Warn("no broker: sessions parked until one is back", "sessions", len(ids))
}

// settle looks at every session this node held when it lost the broker. A
// parked one comes home if its record still names this node, and is let go
// if another node recovered it; one still on the hub (the node was away
// too briefly to park) is let go if another node recovered it all the
// same. While a record cannot be read, it tries again. Runs in its own
// goroutine, owned by n.wg.
func (n *Node) settle() {
	home, gone := 0, 0
	for {
		n.mu.Lock()
		var k, id string
		for k, id = range n.suspects {
			break
		}
		if k == "" {
			n.settling = false
			if n.parked != nil {
				n.parked = nil
				close(n.calm)
			}
			n.mu.Unlock()
			if home+gone > 0 {
				n.log.Info("broker back: sessions settled", "home", home, "recovered elsewhere", gone)
			}
			return
		}
		_, parked := n.parked[k]
		n.mu.Unlock()
		if _, here := n.hub.Session(id); !parked && !here {
			n.mu.Lock()
			delete(n.suspects, k) // it moved on since: not this node's to check
			n.mu.Unlock()
			continue
		}
		if hook := testHookSettle.Load(); hook != nil {
			(*hook)(id)
		}
		var how int
		var err error
		if parked {
			how, err = n.settleParked(id)
		} else {
			how, err = n.settleLive(id)
		}
		if err != nil {
			n.log.Warn("session after the broker came back", "session", protocol.ShortID(id), "err", err)
			select {
			case <-n.ctx.Done():
				n.mu.Lock()
				n.settling = false
				n.mu.Unlock()
				return
			case <-time.After(n.cfg.ReconnectWait):
			}
			continue
		}
		switch how {
		case settledHome:
			home++
		case settledGone:
			gone++
			n.log.Warn("session recovered elsewhere while this node had no broker: let go", "session", protocol.ShortID(id))
		}
		n.mu.Lock()
		delete(n.parked, k)
		delete(n.suspects, k)
		n.mu.Unlock()
	}
}

// How settling a session ended (settleParked, bringHome, settleLive).
const (
	settledNot  = iota // nothing to do, or a take or claim brought the session here since the park
	settledHome        // brought home from where it was parked
	settledGone        // another node recovered it: let go
)

// settleParked settles parked session id (bringHome) under its take lock,
// as a take or claim runs.
func (n *Node) settleParked(id string) (int, error) {
	release, s := n.lock(n.ctx, id)
	if s != nil || release == nil {
		return settledNot, nil // live here, brought back by a take; or closing
	}
	defer release()
	return n.bringHome(id)
}

// bringHome brings session id home from where it was parked if it is
// still this node's (reclaim), and lets it go if another node recovered it.
// It runs under the session's take lock, and acts only if the session is
// still parked: a take or claim that brought it here since the park made
// the parked state history (forgetParked), and the session may have moved
// on from here again, with its new node's record not written yet.
// Importing the parked state then would put the session on two nodes.
func (n *Node) bringHome(id string) (int, error) {
	k := key(id)
	n.mu.Lock()
	st, still := n.parked[k]
	n.mu.Unlock()
	if !still {
		return settledNot, nil
	}
	mine, err := n.reclaim(id, true)
	if err != nil {
		return settledNot, err
	}
	how := settledHome
	if !mine {
		n.unsubscribe(id, false)
		how = settledGone
	} else if _, err := n.hub.Import(st); err != nil {
		// Lost until a node recovers it from its record.
		n.log.Warn("parked session not imported", "session", protocol.ShortID(id), "err", err)
		n.unsubscribe(id, false)
		how = settledNot
	}
	n.forgetParked(id)
	return how, nil
}

// settleLive lets session id go if another node recovered it while this
// node, away too briefly to park it, kept it on its hub.
func (n *Node) settleLive(id string) (int, error) {
	mine, err := n.reclaim(id, false)
	if err != nil || mine {
		return settledNot, err
	}
	n.records.lock(id)
	_, err = n.hub.Withdraw(id)
	n.records.unlock(id)
	if err != nil {
		return settledNot, nil // it left meanwhile
	}
	n.unsubscribe(id, false)
	return settledGone, nil
}

// forgetParked drops what the node parked of session id: it came home, or
// a take or claim has just brought it here afresh, which settles it and
// makes the parked state history. Called under the session's take lock.
func (n *Node) forgetParked(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.parked, key(id))
	delete(n.suspects, key(id))
}

// testHookSettle, when set by a test, runs before the node settles a
// session it held when it lost the broker, with the session's id.
var testHookSettle atomic.Pointer[func(id string)]

// reclaim reports whether session id is still this node's: its record
// names this node, or names another that does not hold it (a record write
// of this node's was lost with the broker, after a take, say). If so, and
// the record does not name this node or write says to, it writes the record
// naming this node with a compare-and-set on its revision: a node that read
// the record before (to recover the session) and writes after fails its
// own compare-and-set. A record gone says the session ended.
func (n *Node) reclaim(id string, write bool) (mine bool, err error) {
	ctx, cancel := context.WithTimeout(n.ctx, requestTimeout)
	defer cancel()
	rec, rev, found, err := n.readRecord(ctx, id)
	switch {
	case err != nil:
		return false, err
	case !found:
		return false, nil
	case rec.Node != n.cfg.Node:
		m, err := n.nc.RequestWithContext(ctx, n.nodeSubject(rec.Node), []byte(key(id)))
		switch {
		case err == nil && string(m.Data) == held:
			return false, nil // recovered there
		case err != nil && !errors.Is(err, nats.ErrNoResponders):
			return false, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		rec.Node, write = n.cfg.Node, true
	}
	if !write {
		return true, nil
	}
	data, _ := json.Marshal(rec)
	if _, err := n.kv.Update(ctx, key(id), data, rev); err != nil {
		return false, fmt.Errorf("%w: record changed meanwhile: %v", ErrUnavailable, err) // look again
	}
	return true, nil
}

// linkContext ends when the connection to the broker it was taken on is
// lost.
func (n *Node) linkContext() context.Context {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.link
}

// waitCalm holds a chat or published delivery back while sessions are parked, so that
// they get it once home; it reports false if the node closed meanwhile.
func (n *Node) waitCalm() bool {
	n.mu.Lock()
	calm := n.calm
	n.mu.Unlock()
	if calm == nil {
		return true
	}
	select {
	case <-calm:
		return true
	case <-n.ctx.Done():
		return false
	}
}
