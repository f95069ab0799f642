package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A session moving here from a node whose chat consumer lagged behind this
// one's (a broker fault can stall a node's chat for seconds) has not had
// the chat in between. The hub fills that in from the messages it keeps
// (the last 1,024); a longer lag is filled in from the broker's chat
// stream, whose sequence numbers are the chat ids, before the session is
// imported.

// fillFromBrokerAfter is the lag past which chat is read from the broker:
// well inside what the hub keeps, so that the two overlap.
const fillFromBrokerAfter = 512

// fillChat appends to st, a session moving here, the chat messages after
// its last one up to the last this node delivered, read from the broker,
// if it lags by more than fillFromBrokerAfter. Whatever it could not read
// (the broker is away, the stream no longer has them) is left to the hub's
// own fill from what it keeps.
func (n *Node) fillChat(ctx context.Context, st *broadcast.SessionState) {
	to := n.hub.LastChatID()
	if to-st.LastChat <= fillFromBrokerAfter {
		return
	}
	msgs, err := n.readChat(ctx, st.LastChat+1, to)
	if err != nil {
		n.log.Warn("chat to fill a moving session in", "session", protocol.ShortID(st.ID), "from", st.LastChat+1, "to", to, "err", err)
	}
	now := time.Now()
	for _, msg := range msgs {
		st.AppendChat(msg, now)
	}
	if len(msgs) > 0 {
		n.log.Debug("chat filled in from the broker", "session", protocol.ShortID(st.ID), "messages", len(msgs))
	}
}

// readChat reads chat ids from..to from the broker's chat stream, in order;
// on an error, those read until then.
func (n *Node) readChat(ctx context.Context, from, to int64) ([]protocol.Chat, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	cons, err := n.chatStream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: uint64(from),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: chat consumer: %v", ErrUnavailable, err)
	}
	var msgs []protocol.Chat
	for done := false; !done; {
		batch, err := cons.Fetch(int(min(to-from+1, 256)), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return msgs, fmt.Errorf("%w: chat: %v", ErrUnavailable, err)
		}
		got := 0
		for m := range batch.Messages() { // to the end: the fetch's goroutine ends with it
			got++
			md, err := m.Metadata()
			if err != nil || done {
				continue
			}
			seq := int64(md.Sequence.Stream)
			if done = seq >= to; seq > to {
				continue
			}
			msg, err := decodeChat(md.Sequence.Stream, m.Data())
			if err != nil {
				continue // as the consumer skips it
			}
			msgs = append(msgs, msg)
		}
		if err := batch.Error(); err != nil && !done {
			return msgs, fmt.Errorf("%w: chat: %v", ErrUnavailable, err)
		}
		done = done || got == 0 // the stream ends before to
	}
	return msgs, nil
}
