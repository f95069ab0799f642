package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
)

// Published events travel as chat does, through a JetStream stream of their
// own: its sequence numbers order them, every node delivers them in that
// order, and a node that dies loses none the broker has. The event's data is
// the message's data as is; its channel is a header.

// channelHeader names the published channel of a message.
const channelHeader = "Xhrsse-Channel"

var _ broadcast.PublishRelay = (*Node)(nil)

func (n *Node) publishedStreamName() string { return n.cfg.Prefix + "_PUBLISHED" }
func (n *Node) publishedSubject() string    { return n.cfg.Prefix + ".published" }

// setupPublished makes the published events' stream. It keeps what a node
// joining or catching up after a broker outage may need, bounded in bytes
// since an event may be 64 KiB.
func (n *Node) setupPublished(ctx context.Context) error {
	_, err := n.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:     n.publishedStreamName(),
		Subjects: []string{n.publishedSubject()},
		Storage:  jetstream.FileStorage,
		MaxMsgs:  100_000,
		MaxBytes: 256 << 20,
		MaxAge:   time.Hour,
		Replicas: n.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("cluster: published stream: %w", err)
	}
	return nil
}

// PublishEvent stores one published event in the cluster's stream; the
// stream's sequence number orders it. Every node, this one included,
// delivers it from there.
func (n *Node) PublishEvent(ctx context.Context, channel string, data []byte) (uint64, error) {
	m := nats.NewMsg(n.publishedSubject())
	m.Header.Set(channelHeader, channel)
	m.Data = data
	return n.store(ctx, "publish", m)
}

// startPublished delivers the published events to the hub in order, from the
// first one after those the broker had when the node started: a session
// sees what is published after it tuned in. An ordered consumer survives
// broker restarts and reconnects, going on after the last event it
// delivered.
func (n *Node) startPublished() error {
	ctx, cancel := context.WithTimeout(n.ctx, 10*n.cfg.Claim)
	defer cancel()
	stream, err := n.js.Stream(ctx, n.publishedStreamName())
	if err != nil {
		return fmt.Errorf("cluster: published stream: %w", err)
	}
	n.pubStream = stream
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("cluster: published stream: %w", err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   info.State.LastSeq + 1,
	})
	if err != nil {
		return fmt.Errorf("cluster: published consumer: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			n.log.Warn("published event without metadata", "err", err)
			return
		}
		// Held back, as chat is, while sessions are parked.
		if n.waitCalm() {
			n.hub.DeliverPublished(md.Sequence.Stream, m.Headers().Get(channelHeader), m.Data())
		}
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		n.log.Debug("published consumer", "err", err)
	}), jetstream.PullHeartbeat(consumerHeartbeat), jetstream.PullExpiry(10*consumerHeartbeat))
	if err != nil {
		return fmt.Errorf("cluster: published consumer: %w", err)
	}
	n.published = cc
	return nil
}
