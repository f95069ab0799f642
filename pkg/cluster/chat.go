package cluster

import (
	"context"
	"encoding/json"
	"fmt"

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
	ack, err := n.js.Publish(ctx, n.cfg.Prefix+".chat", data)
	if err != nil {
		return 0, fmt.Errorf("%w: chat: %v", ErrUnavailable, err)
	}
	return int64(ack.Sequence), nil
}

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
		n.hub.Deliver(msg)
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		n.log.Debug("chat consumer", "err", err)
	}))
	if err != nil {
		return fmt.Errorf("cluster: chat consumer: %w", err)
	}
	n.chat = cc
	return nil
}
