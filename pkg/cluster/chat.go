package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// PublishChat stores msg in the cluster's chat stream; the stream's sequence
// number is its id. Every node, this one included, delivers it from there.
func (n *Node) PublishChat(ctx context.Context, msg protocol.Chat) (int64, error) {
	data, err := json.Marshal(msg)
	if err != nil {
		return 0, fmt.Errorf("cluster: chat: %w", err)
	}
	m := nats.NewMsg(n.cfg.Prefix + ".chat")
	m.Data = data
	seq, err := n.store(ctx, "chat", m)
	return int64(seq), err
}

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

// consumerHeartbeat is how often the broker tells the chat and published
// consumers it is still there while nothing comes.
const consumerHeartbeat = 500 * time.Millisecond

// startChat delivers the chat stream to the hub in order, from the last
// protocol.ChatHistory messages on, so a new node has the same history as
// the others. An ordered consumer survives broker restarts and reconnects,
// going on after the last message it delivered.
func (n *Node) startChat() error {
	ctx, cancel := context.WithTimeout(n.ctx, 10*n.cfg.Claim)
	defer cancel()
	stream, err := n.js.Stream(ctx, n.streamName())
	if err != nil {
		return fmt.Errorf("cluster: chat stream: %w", err)
	}
	n.chatStream = stream
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("cluster: chat stream: %w", err)
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if last := info.State.LastSeq; last > protocol.ChatHistory {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = last - protocol.ChatHistory + 1
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("cluster: chat consumer: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			n.log.Warn("chat without metadata", "err", err)
			return
		}
		var msg protocol.Chat
		if err := json.Unmarshal(m.Data(), &msg); err != nil {
			n.log.Warn("bad chat on the broker", "seq", md.Sequence.Stream, "err", err)
			return
		}
		msg.ID = int64(md.Sequence.Stream)
		if n.waitCalm() {
			n.hub.Deliver(msg)
		}
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		n.log.Debug("chat consumer", "err", err)
	}),
		// The consumer lives on one broker; when that broker goes, the
		// missing heartbeats are how the node learns it and makes a new
		// one elsewhere. At the default 5 s, chat stalled up to ten
		// seconds after a broker of a cluster died.
		jetstream.PullHeartbeat(consumerHeartbeat), jetstream.PullExpiry(10*consumerHeartbeat))
	if err != nil {
		return fmt.Errorf("cluster: chat consumer: %w", err)
	}
	n.chat = cc
	return nil
}
