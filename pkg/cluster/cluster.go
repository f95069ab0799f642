// Package cluster joins several xhrsse servers through a NATS broker, so that
// any of them can answer any request (docs/SCALING.md):
//
//   - ticks need no broker: every node's hub draws them from one seed, kept
//     in a JetStream key-value bucket, at the same instants;
//   - chat goes through a JetStream stream, whose sequence numbers are the
//     chat ids, and every node delivers it to its sessions in that order;
//   - a session lives on one node, the one that answers on its subject;
//     a POST that lands elsewhere is forwarded there by request/reply, and a
//     stream that lands elsewhere takes the session over (its history moves
//     with it, so the resume loses nothing);
//   - a key-value record per session (its channels and an id bound) lets
//     another node carry on when the session's node died, after a gap.
package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// ErrUnavailable says the broker cannot be reached: the request may be tried
// again (503).
var ErrUnavailable = broadcast.ErrUnavailable

// Config says how a node joins.
type Config struct {
	// URL is the broker's, e.g. nats://127.0.0.1:4222; for a NATS cluster,
	// several, comma-separated, so that the node reaches another broker when
	// one is away. Credentials may be in it (nats://user:pass@host:4222);
	// tls:// asks for TLS.
	URL string
	// Replicas is how many brokers keep each copy of the streams (chat,
	// published events) and the buckets (JetStream's replicas: 1, or 3 for a
	// cluster of three brokers that survives the loss of any one). Default 1.
	// A larger count given to an existing stream or bucket raises it there.
	Replicas int
	// Credentials is a NATS credentials file (a user JWT and its nkey seed),
	// for a broker that asks for one; empty: none.
	Credentials string
	// RootCA is a PEM file of the certificate authorities to trust for the
	// broker's TLS certificate instead of the system's; empty: the system's.
	RootCA string
	// Node names this process; it must differ between the nodes.
	Node string
	// Prefix starts every subject, stream and bucket name, so clusters can
	// share a broker; default "xhrsse".
	Prefix string
	// Claim is how long a session's subject may go unanswered before another
	// node concludes its node died (default 1 s).
	Claim time.Duration
	// RecordTTL is how long a session's record outlives its last change;
	// default 1 h.
	RecordTTL time.Duration
	// ReconnectWait is the pause between attempts to reach the broker
	// again (default 250 ms).
	ReconnectWait time.Duration
	// Channels are this node's channels (broadcast.Hub.Channels). Every
	// node draws the same ticks only if every node has the same channels,
	// so the first node records them and Dial refuses a node whose channels
	// differ. Nil skips the check.
	Channels []protocol.Channel
	// Logger; nil logs nothing.
	Logger *slog.Logger
}

// A Node is one server's membership. Dial it, hand its Seed and itself (as
// broadcast.Relay) to the hub, then Start it with the hub and the HTTP API.
type Node struct {
	cfg  Config
	log  *slog.Logger
	nc   *nats.Conn
	js   jetstream.JetStream
	kv   jetstream.KeyValue // session records
	seed [32]byte

	hub   *broadcast.Hub
	local http.Handler

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // consumer, workers, writer

	reqs chan *nats.Msg // requests on session subjects, for triage
	work chan job       // requests triaged, for the workers

	mu      sync.Mutex
	subs    map[string]*subscription           // guarded by mu; by session key
	closing bool                               // guarded by mu; Close began: subscribe no more
	pending map[string]broadcast.SessionChange // guarded by mu; records to write
	taking  map[string]chan struct{}           // guarded by mu; by key, takes and claims under way here
	runs    map[string]*run                    // guarded by mu; requests run here, by once()
	kept    []keptRun                          // guarded by mu; answers kept, oldest first
	wake    chan struct{}                      // "pending has something"
	// Without a broker (partition.go): parkTimer counts down to parking,
	// parked holds the sessions taken off the hub, by key, suspects those
	// to check once back, and calm is closed while none are parked (nil
	// before the first park). Guarded by mu.
	// link ends when the connection to the broker is lost: requests in
	// flight then fail at once rather than wait out requestTimeout for a
	// reply the lost broker will never pass on. Guarded by mu.
	link      context.Context
	linkDown  context.CancelFunc
	parkTimer *time.Timer
	parked    map[string]broadcast.SessionState
	suspects  map[string]string // by key: held when the broker was lost, to be checked
	settling  bool              // a settle goroutine runs
	calm      chan struct{}
	// parks counts the times the node parked its sessions: a reply made
	// before a park is not sent again after it (resend.go).
	parks atomic.Uint64

	records sessionLocks // a session's record write, hand-over, parking
	replies replyLog     // replies sent lately, to send again after a lost broker (resend.go)

	chat       *feed
	chatStream jetstream.Stream
	published  *feed            // published events (publish.go)
	pubStream  jetstream.Stream // their stream
	metrics    metrics
}

// Dial connects to the broker and makes the stream and buckets the cluster
// needs, if the first node has not already.
func Dial(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.URL == "" || cfg.Node == "" {
		return nil, errors.New("cluster: need a broker URL and a node name")
	}
	if !validName(cfg.Node) || (cfg.Prefix != "" && !validName(cfg.Prefix)) {
		return nil, fmt.Errorf("cluster: node %q, prefix %q: letters, digits, - and _ only", cfg.Node, cfg.Prefix)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "xhrsse"
	}
	if cfg.Claim <= 0 {
		cfg.Claim = time.Second
	}
	if cfg.RecordTTL <= 0 {
		cfg.RecordTTL = time.Hour
	}
	if cfg.ReconnectWait <= 0 {
		cfg.ReconnectWait = 250 * time.Millisecond
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{
		cfg: cfg, log: cfg.Logger.With("node", cfg.Node),
		reqs:    make(chan *nats.Msg, 4096),
		work:    make(chan job, 4096),
		runs:    make(map[string]*run),
		subs:    make(map[string]*subscription),
		pending: make(map[string]broadcast.SessionChange),
		taking:  make(map[string]chan struct{}),
		wake:    make(chan struct{}, 1),
		metrics: newMetrics(),
		replies: replyLog{keep: replyKeep(cfg.Claim)},
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.link, n.linkDown = context.WithCancel(n.ctx)
	opts := []nats.Option{
		nats.Name("xhrsse " + cfg.Node),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(cfg.ReconnectWait),
		// Nothing is buffered while the broker is away: a chat POST then
		// fails at once (503) rather than going out late, after its sender
		// was told it failed and sent it again.
		nats.ReconnectBufSize(-1),
		// A connection that went silent without closing (a partition TCP
		// does not notice) is given up after two pings unanswered, and
		// the node parks its sessions as when the connection closes. The
		// default, two minutes, would leave them on the node all that
		// time while another node recovers them, once the broker drops
		// the silent connection on its side (docs/SCALING.md).
		nats.PingInterval(pingInterval(cfg.Claim)),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			n.log.Warn("broker lost", "err", err)
			n.brokerLost()
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			n.log.Info("broker back", "url", c.ConnectedUrlRedacted())
			n.brokerBack()
		}),
	}
	if cfg.Credentials != "" {
		opts = append(opts, nats.UserCredentials(cfg.Credentials))
	}
	if cfg.RootCA != "" {
		opts = append(opts, nats.RootCAs(cfg.RootCA))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: connect %s: %w", redacted(cfg.URL), err)
	}
	n.nc = nc
	if err := n.setup(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return n, nil
}

func (n *Node) setup(ctx context.Context) error {
	js, err := jetstream.New(n.nc)
	if err != nil {
		return fmt.Errorf("cluster: jetstream: %w", err)
	}
	n.js = js
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:     n.chatStreamName(),
		Subjects: []string{n.chatSubject()},
		Storage:  jetstream.FileStorage,
		MaxMsgs:  10_000,
		Replicas: n.cfg.Replicas,
		// Any replica answers a direct get: a node reads chat that
		// way while its consumer is being made again (feed.go).
		AllowDirect: true,
	}); err != nil {
		return fmt.Errorf("cluster: chat stream: %w", err)
	}
	if err := n.setupPublished(ctx); err != nil {
		return err
	}
	n.kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: n.sessionsBucket(), Storage: jetstream.FileStorage, TTL: n.cfg.RecordTTL,
		Replicas: n.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("cluster: sessions bucket: %w", err)
	}
	conf, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: n.configBucket(), Storage: jetstream.FileStorage,
		Replicas: n.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("cluster: config bucket: %w", err)
	}
	// The first node to get here picks the seed; the others read it.
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	if _, err := conf.Create(ctx, "seed", seed[:]); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("cluster: seed: %w", err)
	}
	e, err := conf.Get(ctx, "seed")
	if err != nil {
		return fmt.Errorf("cluster: seed: %w", err)
	}
	if len(e.Value()) != len(n.seed) {
		return fmt.Errorf("cluster: seed: the config bucket holds %d bytes, want %d", len(e.Value()), len(n.seed))
	}
	copy(n.seed[:], e.Value())
	if n.cfg.Channels != nil {
		return sameChannels(ctx, conf, n.cfg.Channels)
	}
	return nil
}

// sameChannels records the channels of the first node and compares every
// later node's with them.
func sameChannels(ctx context.Context, conf jetstream.KeyValue, mine []protocol.Channel) error {
	data, _ := json.Marshal(mine)
	if _, err := conf.Create(ctx, "channels", data); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("cluster: channels: %w", err)
	}
	e, err := conf.Get(ctx, "channels")
	if err != nil {
		return fmt.Errorf("cluster: channels: %w", err)
	}
	if !bytes.Equal(e.Value(), data) {
		return fmt.Errorf("cluster: this node's channels (rates, repertoires) differ from the cluster's, so its ticks would too: the cluster has %s, this node %s", e.Value(), data)
	}
	return nil
}

// pingInterval is how often a node pings its broker: a silent connection is
// noticed within two to three of them.
func pingInterval(claim time.Duration) time.Duration { return max(2*claim, time.Second) }

// Seed is the cluster's seed for broadcast.WithSeed: every node ticks alike.
func (n *Node) Seed() [32]byte { return n.seed }

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.Node }

// Start puts the node to work for hub: chat delivery, answering for its
// sessions (running forwarded requests on local, the HTTP API) and keeping
// their records.
func (n *Node) Start(hub *broadcast.Hub, local http.Handler) error {
	n.hub, n.local = hub, local
	if err := n.startChat(); err != nil {
		return err
	}
	if err := n.startPublished(); err != nil {
		n.stopConsumers()
		return err
	}
	// Before recovering one of this node's sessions from its record,
	// another node asks here whether the session is still held.
	if _, err := n.nc.Subscribe(n.nodeSubject(n.cfg.Node), func(m *nats.Msg) {
		_ = m.Respond([]byte(n.whereIs(string(m.Data))))
	}); err != nil {
		n.stopConsumers()
		return fmt.Errorf("%w: subscribe: %v", ErrUnavailable, err)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.triage()
	}()
	for range 16 {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.serve()
		}()
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.write()
	}()
	return nil
}

// stopConsumers stops delivering chat and published events.
func (n *Node) stopConsumers() {
	if n.chat != nil {
		n.chat.stop()
	}
	if n.published != nil {
		n.published.stop()
	}
}

// Close stops answering for sessions, writes the records still pending and
// leaves the broker. Sessions still on the hub can be recovered by another
// node from their records, after a gap; to hand them over without one, close
// the hub's streams first and give clients time to come back elsewhere
// (cmd/server -handover).
//
// Its error says how many records could not be written (the broker was away):
// another node recovering those sessions may announce a smaller gap than it
// should.
func (n *Node) Close() error {
	n.stopConsumers()
	n.mu.Lock()
	n.closing = true
	if n.parkTimer != nil {
		n.parkTimer.Stop()
	}
	for id, s := range n.subs {
		if s.retire != nil {
			s.retire.Stop()
		}
		_ = s.sub.Unsubscribe()
		delete(n.subs, id)
	}
	n.mu.Unlock()
	// Requests the broker routed here before it handled the
	// unsubscriptions are answered "moved" rather than left for their
	// senders to time out on (requestTimeout, 10 s, with the session
	// unreachable all that time): the flush's round trip brings every one
	// of them in, and what the workers do not pick up before they stop is
	// answered after.
	if n.nc.IsConnected() { // else nothing more comes in anyway
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = n.nc.FlushWithContext(ctx)
		cancel()
	}
	moved := n.movedReply()
	drain := func() {
		for {
			select {
			case m := <-n.reqs:
				_ = m.Respond(moved)
			case j := <-n.work:
				_ = j.m.Respond(moved)
			default:
				return
			}
		}
	}
	drain()
	n.cancel()
	n.wg.Wait()
	drain()
	err := n.flushRecords(context.Background())
	n.nc.Close()
	return err
}

// Handover waits, at shutdown, until every session of the hub has been taken
// by another node or ctx ends, and returns how many are left (they can still
// be recovered from their records, after a gap). Call it after the hub's
// streams ended and before Close.
func (n *Node) Handover(ctx context.Context) int {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		left := n.hub.SessionCount()
		if left == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return left
		case <-t.C:
		}
	}
}
