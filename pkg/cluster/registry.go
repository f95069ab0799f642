package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A record is what the broker keeps of a session, under key(id): enough for
// another node to carry on if this one dies.
type record struct {
	Node     string   `json:"node"`
	Channels []string `json:"channels"`
	Reserved uint64   `json:"reserved"`
}

// SessionChanged queues the session's record for writing (broadcast.Relay).
// Changes to one session coalesce: only the latest is written.
func (n *Node) SessionChanged(c broadcast.SessionChange) {
	n.mu.Lock()
	n.pending[c.ID] = c
	n.mu.Unlock()
	n.wakeWriter()
}

// wakeWriter tells the writer that records are pending.
func (n *Node) wakeWriter() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Register makes a new session reachable from every node before its id is
// handed out: its subject is answered here and its record is on the broker.
func (n *Node) Register(ctx context.Context, s *broadcast.Session) error {
	return n.register(ctx, s, false)
}

// register is Register; keep is for a session that moved here (taken over
// or recovered): its old node let it go, so if only its record cannot be
// written (the broker went away that moment), it stays here, answered on
// its subject (nats.go subscribes again once a broker is back) and its
// record queued for the writer, rather than be lost until another node
// recovers it after a gap. Meanwhile its old node answers "moving" for it
// (linger), so none recovers it from the old record.
//
// A moved session's stream does wait for its record: a record that still
// names the old node once that node's linger is over lets a node that
// does not hear the new one at that moment (it is reconnecting) recover
// the session from it, with a gap, while the new node has it. The cluster
// soak found that when the stream went ahead and the record followed.
func (n *Node) register(ctx context.Context, s *broadcast.Session, keep bool) error {
	if err := n.subscribe(s.ID()); err != nil {
		return err
	}
	n.mu.Lock()
	c, ok := n.pending[s.ID()]
	delete(n.pending, s.ID())
	n.mu.Unlock()
	// The broker handles a connection's messages in order: once the put
	// (or, if the writer put the record already, a ping) is answered, so is
	// the subscription sent before it.
	var err error
	wctx, cancel := context.WithTimeout(ctx, recordWait)
	if ok {
		err = n.writeRecord(wctx, c)
	} else if err = n.flush(wctx); err != nil {
		err = fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	cancel()
	switch {
	case err == nil:
	case keep:
		n.log.Warn("session moved here, its record not written yet", "session", protocol.ShortID(s.ID()), "err", err)
		if ok {
			n.requeue(c)
		}
	default:
		n.unsubscribe(s.ID(), true)
		return err
	}
	return nil
}

// requeue queues c for the writer again, unless a newer change came.
func (n *Node) requeue(c broadcast.SessionChange) {
	n.mu.Lock()
	if _, newer := n.pending[c.ID]; !newer {
		n.pending[c.ID] = c
	}
	n.mu.Unlock()
	n.wakeWriter()
}

// recordWait bounds one record write. The writer holds the session's lock
// meanwhile, which its hand-over waits for, and a session moving here waits
// for its record: while the bucket has no leader (its broker died, and
// JetStream elects another, which takes seconds), a write fails after this
// and is queued again.
const recordWait = 2 * time.Second

// write writes queued records until the node closes. Runs in its own
// goroutine.
func (n *Node) write() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.wake:
		}
		_ = n.flushRecords(n.ctx) // what failed is queued again
	}
}

// flushRecords writes the pending records. When the broker is away, the
// one that failed and those not tried yet are queued again (unless a newer
// change came meanwhile), it waits ReconnectWait, and returns the error.
func (n *Node) flushRecords(ctx context.Context) error {
	n.mu.Lock()
	batch := n.pending
	n.pending = make(map[string]broadcast.SessionChange)
	n.mu.Unlock()
	for id, c := range batch {
		n.records.lock(c.ID)
		if c.Gone {
			n.unsubscribe(c.ID, true)
		} else if _, here := n.hub.Session(c.ID); !here {
			n.records.unlock(c.ID)
			delete(batch, id)
			continue // it moved on: its new node writes the record now
		}
		if hook := testHookRecordWrite.Load(); hook != nil {
			(*hook)(c.ID)
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordWait)
		err := n.writeRecord(wctx, c)
		cancel()
		n.records.unlock(c.ID)
		if err != nil {
			// A node that dies before writing them leaves records that
			// are out of date, so a recovery may announce a smaller gap
			// than it should (docs/SCALING.md).
			n.log.Warn("session record", "session", protocol.ShortID(c.ID), "err", err)
			for _, c := range batch {
				n.requeue(c)
			}
			select {
			case <-ctx.Done():
			case <-time.After(n.cfg.ReconnectWait):
			}
			return fmt.Errorf("cluster: %d session records not written: %w", len(batch), err)
		}
		delete(batch, id)
	}
	return nil
}

// testHookRecordWrite, when set by a test, runs before the writer puts a
// record, with the session's id: a slow write, on demand.
var testHookRecordWrite atomic.Pointer[func(id string)]

func (n *Node) writeRecord(ctx context.Context, c broadcast.SessionChange) error {
	ctx, cancel := n.onLink(ctx)
	defer cancel()
	if c.Gone {
		err := n.kv.Delete(ctx, key(c.ID))
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("%w: delete record: %v", ErrUnavailable, err)
		}
		return nil
	}
	data, _ := json.Marshal(record{Node: n.cfg.Node, Channels: c.Channels, Reserved: c.Reserved})
	if _, err := n.kv.Put(ctx, key(c.ID), data); err != nil {
		return fmt.Errorf("%w: put record: %v", ErrUnavailable, err)
	}
	return nil
}

// readRecord returns a session's record and its revision; found is false if
// there is none (the session never was, or ended).
func (n *Node) readRecord(ctx context.Context, id string) (rec record, rev uint64, found bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, recordWait)
	defer cancel()
	ctx, unlink := n.onLink(ctx)
	defer unlink()
	e, err := n.kv.Get(ctx, key(id))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return record{}, 0, false, nil
	case err != nil:
		return record{}, 0, false, fmt.Errorf("%w: read record: %w", ErrUnavailable, err)
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return record{}, 0, false, fmt.Errorf("cluster: bad record: %w", err)
	}
	return rec, e.Revision(), true, nil
}

// flush waits until the broker has handled everything sent so far.
func (n *Node) flush(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	return n.nc.FlushWithContext(ctx)
}

// onLink is ctx, ended too when the broker connection it starts on is
// lost: a request in flight then gets no reply, ever, and waiting for one
// out to ctx's end held a take, and with it the session's lock on this
// node, for 30 s (the session's stream and POSTs through this node waited
// all that time).
func (n *Node) onLink(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(n.linkContext(), cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}
