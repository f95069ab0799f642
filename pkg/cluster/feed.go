package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A feed delivers one JetStream stream (chat, published events) to the
// hub, in the stream's order, each message once.
//
// Its main path is an ordered consumer, which lives on one broker. When
// that broker goes, nats.go notices by the missing heartbeats and makes
// a new consumer, but making one needs the brokers' JetStream meta
// leader, which a broker killed outright may have been (the others elect
// another after 4 to 9 s), and a failed attempt is tried again only after
// 1, 2, 4 s... So while the consumer is silent, the feed also asks the
// stream's replicas directly for the next message (a direct get, which
// any replica answers, leader or not) every feedPoll, and delivers what
// it finds. Both paths go through take, which drops what was delivered
// already.
type feed struct {
	n       *Node
	what    string // for the logs
	subject string // the stream's
	stream  jetstream.Stream
	cc      jetstream.ConsumeContext
	deliver func(seq uint64, hdr nats.Header, data []byte)
	done    chan struct{} // closed by stop

	mu      sync.Mutex
	next    uint64    // guarded by mu: the next sequence to deliver
	heard   time.Time // guarded by mu: the consumer's last delivery
	stopped bool      // guarded by mu
}

// consumerHeartbeat is how often the broker tells the ordered consumer it
// is still there while nothing comes; two missed and nats.go makes a new
// one. At the default 5 s, chat stalled up to ten seconds after a broker
// of a cluster died.
const consumerHeartbeat = 500 * time.Millisecond

// feedPoll is how long the consumer may be silent before the feed asks
// the stream's replicas for the next message, and how often it asks then.
// While the consumer works, each message comes through it within
// milliseconds; with nothing to deliver, a node asks about twice a second
// per stream and is told there is nothing.
const feedPoll = 250 * time.Millisecond

// feedBatch bounds the messages one poll reads, so that a node far behind
// goes on catching up at the next poll rather than in one long burst.
const feedBatch = 256

// startFeed starts delivering the stream named name (whose messages are on
// subject) to deliver, in order, from the sequence number first returns
// (given the stream's last one now). While sessions are parked,
// deliveries wait until they are home (waitCalm), so none of them misses
// any. The feed's poller runs on n.wg until stop or Close.
func (n *Node) startFeed(what, name, subject string, first func(last uint64) uint64, deliver func(seq uint64, hdr nats.Header, data []byte)) (*feed, error) {
	ctx, cancel := context.WithTimeout(n.ctx, 10*n.cfg.Claim)
	defer cancel()
	stream, err := n.js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("cluster: %s stream: %w", what, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: %s stream: %w", what, err)
	}
	f := &feed{n: n, what: what, subject: subject, stream: stream, deliver: deliver, done: make(chan struct{})}
	f.next = max(first(info.State.LastSeq), 1)
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   f.next,
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: %s consumer: %w", what, err)
	}
	f.cc, err = cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			n.log.Warn("message without metadata", "stream", what, "err", err)
			return
		}
		f.take(md.Sequence.Stream, m.Headers(), m.Data(), true)
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		n.log.Debug("consumer", "stream", what, "err", err)
	}), jetstream.PullHeartbeat(consumerHeartbeat), jetstream.PullExpiry(10*consumerHeartbeat))
	if err != nil {
		return nil, fmt.Errorf("cluster: %s consumer: %w", what, err)
	}
	f.heard = time.Now()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f.poll()
	}()
	return f, nil
}

// take delivers message seq unless it was delivered already (by the
// other path) or the feed stopped. consumer says which path it came by.
func (f *feed) take(seq uint64, hdr nats.Header, data []byte, consumer bool) {
	if !f.n.waitCalm() {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if consumer {
		f.heard = time.Now()
	}
	if f.stopped || seq < f.next {
		return
	}
	f.next = seq + 1
	f.deliver(seq, hdr, data)
}

// poll reads, while the consumer is silent, the messages it has not
// delivered, straight from the stream's replicas. Runs in its own
// goroutine until stop or the node's end.
func (f *feed) poll() {
	t := time.NewTicker(feedPoll)
	defer t.Stop()
	for {
		select {
		case <-f.done:
			return
		case <-f.n.ctx.Done():
			return
		case <-t.C:
		}
		f.mu.Lock()
		quiet := time.Since(f.heard) >= feedPoll
		f.mu.Unlock()
		if quiet && f.n.nc.IsConnected() {
			f.catchUp()
		}
	}
}

// catchUp delivers up to feedBatch messages after the last delivered,
// read by direct gets; it stops at the stream's end or the first failure
// (the next poll tries again).
func (f *feed) catchUp() {
	for range feedBatch {
		f.mu.Lock()
		next := f.next
		f.mu.Unlock()
		ctx, cancel := context.WithTimeout(f.n.ctx, 2*feedPoll)
		m, err := f.stream.GetMsg(ctx, next, jetstream.WithGetMsgSubject(f.subject))
		cancel()
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgNotFound) {
				f.n.log.Debug("direct get", "stream", f.what, "seq", next, "err", err)
			}
			return
		}
		f.take(m.Sequence, m.Header, m.Data, false)
	}
}

// stop ends the deliveries.
func (f *feed) stop() {
	f.cc.Stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.stopped {
		f.stopped = true
		close(f.done)
	}
}
