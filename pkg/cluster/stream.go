package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
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
	var idb [16]byte
	_, _ = rand.Read(idb[:])
	msgID := base64.RawURLEncoding.EncodeToString(idb[:])
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
