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
		// For direct gets, as the chat stream (feed.go).
		AllowDirect: true,
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
// sees what is published after it tuned in.
func (n *Node) startPublished() error {
	first := func(last uint64) uint64 { return last + 1 }
	var err error
	n.published, err = n.startFeed("published", n.publishedStreamName(), n.publishedSubject(), first, func(seq uint64, hdr nats.Header, data []byte) {
		n.hub.DeliverPublished(seq, hdr.Get(channelHeader), data)
	})
	if err != nil {
		return err
	}
	n.pubStream = n.published.stream
	return nil
}
