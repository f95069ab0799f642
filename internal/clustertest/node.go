package clustertest

import (
	"context"
	"net"
	"net/http"
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
// http.Server on a loopback port, wired as cmd/server wires them.
type Node struct {
	URL  string // "http://127.0.0.1:PORT"
	Addr string // "127.0.0.1:PORT"
	Hub  *broadcast.Hub
	Node *cluster.Node

	srv  *http.Server
	done chan struct{} // closed when Serve has returned
	gone atomic.Bool   // killed or shut down
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
// tokens, say); its Cluster and Collectors are the node's.
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
	hub, err := broadcast.New(append([]broadcast.Option{
		broadcast.WithChannels(broadcast.DefaultChannelsAt(ChannelRate)...),
		broadcast.WithSeed(cn.Seed()), broadcast.WithRelay(cn),
	}, opts...)...)
	if err != nil {
		cn.Close()
		t.Fatal(err)
	}
	scfg.Cluster, scfg.Collectors = cn, append(scfg.Collectors, cn.Collectors()...)
	api, err := server.New(hub, scfg)
	if err != nil {
		cn.Close()
		hub.Close(context.Background())
		t.Fatal(err)
	}
	if err := cn.Start(hub, api); err != nil {
		cn.Close()
		hub.Close(context.Background())
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cn.Close()
		hub.Close(context.Background())
		t.Fatal(err)
	}
	n := &Node{
		URL: "http://" + ln.Addr().String(), Addr: ln.Addr().String(), Hub: hub, Node: cn,
		srv: server.HTTPServer(api, hub), done: make(chan struct{}),
	}
	go func() {
		defer close(n.done)
		_ = n.srv.Serve(ln)
	}()
	t.Cleanup(n.Kill)
	return n
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
	n.srv.Close()
	<-n.done
	n.Node.Close()
	n.Hub.Close(context.Background())
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
	_ = server.Shutdown(ctx, n.srv, n.Hub)
	<-n.done
	hctx, hcancel := context.WithTimeout(context.Background(), handover)
	left := n.Node.Handover(hctx)
	hcancel()
	n.Node.Close()
	return left
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
