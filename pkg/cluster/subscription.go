package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// A subscription is a session's subject answered here. After the session
// leaves, it lingers for a while (retire), answering "moved": a request the
// broker routed here just before it heard of the unsubscription would
// otherwise be dropped and its sender would wait for nothing. Meanwhile the
// node tells others asking about the session that it is moving (or ended),
// so none of them recovers it as if this node had died.
type subscription struct {
	id     string
	sub    *nats.Subscription
	retire *time.Timer // set once the session left
	ended  bool        // it left by ending, not by moving
	// handed is the reply that handed the session over, to the take
	// takeID: while the subscription lingers, that take asked again (its
	// node lost the broker, and the reply with it) gets the same reply.
	takeID string
	handed []byte
}

// linger is how long a subscription outlives its session here. A session
// that moved, though, lingers on while its record still names this node,
// up to maxLinger: until its new node has written its record, another
// node that does not hear the new one (it is reconnecting) would find the
// record naming this node, and this node knowing nothing of the session,
// and recover it while the new node has it.
const (
	linger    = 5 * time.Second
	maxLinger = 15 * time.Second
	// recheck is how often a lingering session's record is read again.
	recheck = time.Second
)

func (n *Node) subscribe(id string) error {
	k := key(id)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing {
		// Its requests would find no worker to answer them.
		return fmt.Errorf("%w: node closing", ErrUnavailable)
	}
	if s, ok := n.subs[k]; ok {
		if s.retire != nil {
			s.retire.Stop() // back before it retired
			s.retire, s.ended = nil, false
			s.takeID, s.handed = "", nil
		}
		return nil
	}
	// No queue group: every node subscribed gets each request, so one the
	// broker still keeps for a connection of ours that went silent (until
	// its pings drop it) takes no request from the live one. Only the node
	// holding the session runs it (answer); the others say "moved".
	sub, err := n.nc.ChanSubscribe(n.sessionSubject(k), n.reqs)
	if err != nil {
		return fmt.Errorf("%w: subscribe: %v", ErrUnavailable, err)
	}
	n.subs[k] = &subscription{id: id, sub: sub}
	return nil
}

// unsubscribe retires a session's subscription: it stops after linger.
func (n *Node) unsubscribe(id string, ended bool) {
	k := key(id)
	n.mu.Lock()
	defer n.mu.Unlock()
	s, ok := n.subs[k]
	if !ok || s.retire != nil {
		return
	}
	s.ended = ended
	until := time.Now().Add(maxLinger)
	s.retire = time.AfterFunc(linger, func() { n.retire(k, s, until) })
}

// retire ends the lingering subscription s of key k, unless the session
// moved and its record still names this node (or cannot be read), and
// until has not passed: then it looks again after recheck. Runs on s's
// timer.
func (n *Node) retire(k string, s *subscription, until time.Time) {
	n.mu.Lock()
	if n.closing || n.subs[k] != s || s.retire == nil {
		n.mu.Unlock()
		return // Close or subscribe took over
	}
	ended, id := s.ended, s.id
	n.wg.Add(1) // under mu, before Close's Wait
	n.mu.Unlock()
	defer n.wg.Done()
	if !ended && time.Now().Before(until) && n.recordMayNameMe(id) {
		n.mu.Lock()
		if n.subs[k] == s && s.retire != nil {
			s.retire = time.AfterFunc(recheck, func() { n.retire(k, s, until) })
		}
		n.mu.Unlock()
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.subs[k] == s && s.retire != nil {
		_ = s.sub.Unsubscribe()
		delete(n.subs, k)
	}
}

// recordMayNameMe reports whether session id's record names this node,
// or cannot be read.
func (n *Node) recordMayNameMe(id string) bool {
	ctx, cancel := context.WithTimeout(n.ctx, recheck)
	defer cancel()
	rec, _, found, err := n.readRecord(ctx, id)
	return err != nil || found && rec.Node == n.cfg.Node
}

// Where a session is, as this node knows it (the answer to a node query).
const (
	held    = "held"     // here
	moving  = "moving"   // it left for another node a moment ago
	ended   = "ended"    // it ended here a moment ago
	unknown = "not held" // this node knows nothing of it
)

// whereIs says whether the session of key k is here.
func (n *Node) whereIs(k string) string {
	n.mu.Lock()
	s, ok := n.subs[k]
	var id string
	var retiring, hasEnded bool
	if ok {
		// Read under n.mu: subscribe and unsubscribe change them.
		id, retiring, hasEnded = s.id, s.retire != nil, s.ended
	}
	_, bringing := n.taking[k]
	n.mu.Unlock()
	switch {
	case bringing && (!ok || retiring):
		// A take or claim under way here: a claim writes the record
		// naming this node before the session is on its hub, and "not
		// held" now would let the asker recover it too.
		return moving
	case !ok:
		return unknown
	case !retiring:
		if _, here := n.hub.Session(id); here {
			return held
		}
		return moving // between its import and its subscription, or back
	case hasEnded:
		return ended
	}
	return moving
}

// handedTo returns the reply that handed a session over to req, and the
// session's id, if req is that take asked again; nil otherwise.
func (n *Node) handedTo(req request) ([]byte, string) {
	if req.Op != "take" || req.TakeID == "" {
		return nil, ""
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if s, ok := n.subs[req.Key]; ok && s.retire != nil && s.takeID == req.TakeID {
		return s.handed, s.id
	}
	return nil, ""
}

// keepHanded keeps data, the reply that handed a session over to the take
// req, on its lingering subscription, for handedTo.
func (n *Node) keepHanded(req request, data []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s, ok := n.subs[req.Key]; ok && s.retire != nil {
		s.takeID, s.handed = req.TakeID, data
	}
}

// idOf is the id of the session of key k, if this node answers for it.
func (n *Node) idOf(k string) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s, ok := n.subs[k]
	if !ok {
		return "", false
	}
	return s.id, true
}
