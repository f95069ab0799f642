package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Chat and published events each go through a JetStream stream: stored
// once, whatever the broker's faults, and delivered by every node in the
// stream's order.

// store publishes m to its JetStream stream and returns the sequence number
// the stream gave it. A publish whose acknowledgement does not come (the
// broker died, the stream's leader changed) is sent again, for up to
// publishFor, under the same message id: the stream keeps the first copy
// and acknowledges the others with its sequence number, so a message is
// stored once however often it was sent.
func (n *Node) store(ctx context.Context, what string, m *nats.Msg) (uint64, error) {
	msgID := storeID(ctx, what)
	deadline := time.Now().Add(publishFor)
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, 250*time.Millisecond) {
		tctx, cancel := context.WithTimeout(ctx, publishTry)
		ack, err := n.js.PublishMsg(tctx, m, jetstream.WithMsgID(msgID))
		cancel()
		if err == nil {
			return ack.Sequence, nil
		}
		if ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return 0, fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
		}
		n.log.Debug("publish again", "what", what, "err", err)
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w: %s: %v", ErrUnavailable, what, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// A publish waits publishTry for its acknowledgement, and is tried
// again for publishFor in all: long enough for a broker of a cluster to be
// replaced or a stream leader elected (about a second), short enough that
// a POST is answered (503) well within a client's patience when there is no
// broker at all. The stream's duplicate window (2 min) is far longer.
const (
	publishTry = time.Second
	publishFor = 4 * time.Second
)

// A forwarded request may run on two nodes: on the session's node, whose
// reply was then lost with its broker, and again on the node that carried
// the session on, when its asker sends it again, or on the asker itself,
// which carried the session on when nobody answered. A chat it stores must be
// stored once all the same: each store of a forwarded request is sent under
// a message id made of the request's id and its place among the request's
// stores, the same on any node that runs it, and the stream keeps the
// first (within its duplicate window, 2 min).

// forwarded marks the context of a forwarded request run here
// (runForwarded).
type forwarded struct {
	id     string
	stores atomic.Int64 // made so far
}

type storeKey struct{}

// withForwarded returns ctx for running the forwarded request id.
func withForwarded(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, storeKey{}, &forwarded{id: id})
}

// storeID is the message id of a store of what: for a forwarded request,
// its id and the store's place among its stores; otherwise random.
func storeID(ctx context.Context, what string) string {
	if f, ok := ctx.Value(storeKey{}).(*forwarded); ok {
		return fmt.Sprintf("%s-%s-%d", what, f.id, f.stores.Add(1))
	}
	var idb [16]byte
	_, _ = rand.Read(idb[:])
	return base64.RawURLEncoding.EncodeToString(idb[:])
}
