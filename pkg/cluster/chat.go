package cluster

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// PublishChat stores msg in the cluster's chat stream; the stream's sequence
// number is its id. Every node, this one included, delivers it from there.
func (n *Node) PublishChat(ctx context.Context, msg protocol.Chat) (int64, error) {
	data, err := json.Marshal(msg)
	if err != nil {
		return 0, fmt.Errorf("cluster: chat: %w", err)
	}
	m := nats.NewMsg(n.chatSubject())
	m.Data = data
	seq, err := n.store(ctx, "chat", m)
	return int64(seq), err
}

// startChat delivers the chat stream to the hub in order, from the last
// protocol.ChatHistory messages on, so a new node has the same history as
// the others.
func (n *Node) startChat() error {
	first := func(last uint64) uint64 {
		if last <= protocol.ChatHistory {
			return 1
		}
		return last - protocol.ChatHistory + 1
	}
	var err error
	n.chat, err = n.startFeed("chat", n.chatStreamName(), n.chatSubject(), first, func(seq uint64, _ nats.Header, data []byte) {
		msg, err := decodeChat(seq, data)
		if err != nil {
			n.log.Warn("bad chat on the broker", "seq", seq, "err", err)
			return
		}
		n.hub.Deliver(msg)
	})
	if err != nil {
		return err
	}
	n.chatStream = n.chat.stream
	return nil
}

// decodeChat reads the chat message stored at seq in the chat stream: its
// id is the sequence number.
func decodeChat(seq uint64, data []byte) (protocol.Chat, error) {
	var msg protocol.Chat
	if err := json.Unmarshal(data, &msg); err != nil {
		return protocol.Chat{}, err
	}
	msg.ID = int64(seq)
	return msg, nil
}
