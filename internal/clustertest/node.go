package clustertest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/cluster"
	"github.com/xhrsse/xhrsse/pkg/server"
)

// ChannelRate is how often the nodes' default channels tick, per second.
const ChannelRate = 20

// A Node is a whole xhrsse server in a cluster: hub, API, cluster node and
// http.Server on a loopback port, built by server.Start as cmd/server
// builds it.
type Node struct {
	URL  string // "http://127.0.0.1:PORT"
	Addr string // "127.0.0.1:PORT"
	Hub  *broadcast.Hub
	Node *cluster.Node

	in       *server.Instance
	handover *handover
	gone     atomic.Bool // killed or shut down
}

// StartNode starts node name of the cluster on b (a broker or three), with the default channels
// at ChannelRate ticks a second and opts after the cluster's own hub
// options. The test's cleanup kills it.
func StartNode(t testing.TB, b NATS, name string, opts ...broadcast.Option) *Node {
	t.Helper()
	return StartNodeWith(t, b, name, nil, opts...)
}

// StartNodeWith is StartNode with the cluster's config changed by with (if
// not nil) before the node dials: a logger, say.
func StartNodeWith(t testing.TB, b NATS, name string, with func(*cluster.Config), opts ...broadcast.Option) *Node {
	t.Helper()
	return StartNodeServer(t, b, name, with, server.Config{}, opts...)
}

// StartNodeServer is StartNodeWith with the HTTP API's settings (publish
// tokens, say).
func StartNodeServer(t testing.TB, b NATS, name string, with func(*cluster.Config), scfg server.Config, opts ...broadcast.Option) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	described, err := broadcast.Describe(broadcast.DefaultChannelsAt(ChannelRate))
	if err != nil {
		t.Fatal(err)
	}
	cfg := cluster.Config{
		URL: b.URL(), Replicas: b.Replicas(), Node: name, Claim: 300 * time.Millisecond, ReconnectWait: 50 * time.Millisecond,
		Channels: described,
	}
	if with != nil {
		with(&cfg)
	}

	cn, err := cluster.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &handover{Node: cn}
	in, err := server.Start(ctx, server.Options{
		Hub:      append([]broadcast.Option{broadcast.WithChannels(broadcast.DefaultChannelsAt(ChannelRate)...)}, opts...),
		API:      scfg,
		Cluster:  h,
		Handover: time.Hour, // h bounds it, per Shutdown
	})
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{URL: in.URL(), Addr: in.Addr(), Hub: in.Hub(), Node: cn, in: in, handover: h}
	t.Cleanup(n.Kill)
	return n
}

// handover lets each Shutdown choose how long the node hands its sessions
// over (the server's own bound is set at start), and keeps how many were
// left.
type handover struct {
	*cluster.Node
	d    time.Duration // set by Shutdown before the server's
	left int           // set by Handover, read after the server's Shutdown
}

func (h *handover) Handover(ctx context.Context) int {
	ctx, cancel := context.WithTimeout(ctx, h.d)
	defer cancel()
	h.left = h.Node.Handover(ctx)
	return h.left
}

// Name is the node's name in the cluster.
func (n *Node) Name() string { return n.Node.Name() }

// Kill stops the node as a crash would, as far as the others can tell: its
// connections are cut (no bye), it leaves the broker and hands nothing over.
// Only the first Kill or Shutdown does anything.
func (n *Node) Kill() {
	if n.gone.Swap(true) {
		return
	}
	_ = n.in.Close()
}

// Shutdown stops the node as cmd/server does on SIGTERM: streams end with
// bye, then it hands sessions over to the nodes their clients come back to,
// for at most handover. It returns how many sessions were left. Only the
// first Kill or Shutdown does anything (a later one returns 0).
func (n *Node) Shutdown(handover time.Duration) int {
	if n.gone.Swap(true) {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n.handover.d = handover
	_ = n.in.Shutdown(ctx)
	return n.handover.left
}

// StartNodes starts a node of each name on b, with the default options.
func StartNodes(t testing.TB, b NATS, names ...string) []*Node {
	t.Helper()
	nodes := make([]*Node, len(names))
	for i, name := range names {
		nodes[i] = StartNode(t, b, name)
	}
	return nodes
}
