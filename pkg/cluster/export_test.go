package cluster

import (
	"context"

	"github.com/nats-io/nats.go"
)

// Key is key, for tests that read the broker's session records.
var Key = key

// SlowRecordWrites makes every record write wait in before(id) first, until
// the returned function undoes it. Not for parallel tests.
func SlowRecordWrites(before func(id string)) (undo func()) {
	testHookRecordWrite.Store(&before)
	return func() { testHookRecordWrite.Store(nil) }
}

// HoldDeliveries holds n's chat and published deliveries back, as parking
// does, until release: a node whose consumers stalled.
func HoldDeliveries(n *Node) (release func()) {
	calm := make(chan struct{})
	n.mu.Lock()
	n.calm = calm
	n.mu.Unlock()
	return func() {
		n.mu.Lock()
		if n.calm == calm {
			n.calm = nil
		}
		n.mu.Unlock()
		close(calm)
	}
}

// StopConsumers stops n's chat and published ordered consumers, and
// nothing else: a node whose consumers are gone and not yet made again.
func StopConsumers(n *Node) {
	n.chat.cc.Stop()
	n.published.cc.Stop()
}

// WhereIs is what n answers another node asking where session id is.
func WhereIs(n *Node, id string) string { return n.whereIs(key(id)) }

// Linger is how long a subscription outlives its session, at least.
const Linger = linger

// Listen subscribes n's own connection to subject, for a test that sends
// n a request and has n reply (Respond).
func Listen(n *Node, subject string) (*nats.Subscription, error) {
	sub, err := n.nc.SubscribeSync(subject)
	if err != nil {
		return nil, err
	}
	// The broker has the subscription once it answered what came after.
	return sub, n.nc.Flush()
}

// Respond is n's reply to m, as its workers send it.
func Respond(n *Node, m *nats.Msg, data []byte) { n.respond(m, data) }

// Connected reports whether n has a connection to a broker.
func Connected(n *Node) bool { return n.nc.IsConnected() }

// ReadRecord reads session id's record on n, as a take or claim does.
func ReadRecord(ctx context.Context, n *Node, id string) error {
	_, _, _, err := n.readRecord(ctx, id)
	return err
}

// AskNode is n asking node where session id is, as a claim does.
func AskNode(ctx context.Context, n *Node, node, id string) (string, error) {
	return n.askNode(ctx, node, id)
}

// WithForwarded is ctx as a forwarded request id runs in.
var WithForwarded = withForwarded

// SessionSubject is the subject n sends requests for session id on.
func SessionSubject(n *Node, id string) string { return n.sessionSubject(key(id)) }

// HoldSettle makes a node back from a partition wait in before(id) before
// it settles each session it held, until the returned function undoes it.
// Not for parallel tests.
func HoldSettle(before func(id string)) (undo func()) {
	testHookSettle.Store(&before)
	return func() { testHookSettle.Store(nil) }
}

// Settling reports whether n is still settling the sessions it held when
// it lost the broker.
func Settling(n *Node) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.settling
}

// HoldTake takes session id's take lock on n, as a take or claim under way
// there does, until release.
func HoldTake(n *Node, id string) (release func()) {
	release, _ = n.lock(context.Background(), id)
	return release
}
