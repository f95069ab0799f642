package clustertest

import (
	"github.com/xhrsse/xhrsse/internal/routeport"

	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Brokers is a NATS cluster of three brokers routed over loopback, with
// JetStream clustered among them: what nodes join for a cluster with no
// single point of failure (docs/SCALING.md). Any one broker can stop and
// come back (Broker.Stop, Broker.Start) while the other two keep the
// streams and buckets, which the nodes replicate on all three (Replicas).
type Brokers struct {
	t  testing.TB
	bs []*Broker
}

// StartBrokers starts three clustered brokers on free loopback ports and
// waits until JetStream has a leader; the test's cleanup stops them.
func StartBrokers(t testing.TB) *Brokers {
	t.Helper()
	return startBrokers(t, false)
}

// startBrokers starts three brokers, b1 in a child process if child.
func startBrokers(t testing.TB, child bool) *Brokers {
	t.Helper()
	c := &Brokers{t: t}
	// Every broker routes to every cluster port, its own included (a
	// broker ignores a route to itself), so a broker restarted on its old
	// ports finds the others again.
	var routes []*url.URL
	ports := make([]int, 3)
	for i := range ports {
		var err error
		if ports[i], err = routeport.Free("127.0.0.1"); err != nil {
			t.Fatal(err)
		}
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", ports[i])})
	}
	for i, p := range ports {
		b := &Broker{t: t, name: fmt.Sprintf("b%d", i+1), dir: t.TempDir(), port: -1, route: p, routes: routes, child: child && i == 0}
		c.bs = append(c.bs, b)
	}
	for _, b := range c.bs {
		b.Start()
		t.Cleanup(b.Stop)
	}
	c.WaitReady()
	return c
}

// WaitReady waits until JetStream has a meta leader that every running
// broker follows: streams can be made and found.
func (c *Brokers) WaitReady() {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		// A broker in a child process cannot be asked; the others being
		// current says there is a leader, maybe that one.
		leader, current, asked := false, true, 0
		for _, b := range c.bs {
			if b.child || !b.running() {
				leader = leader || b.running()
				continue
			}
			asked++
			leader = leader || b.srv.JetStreamIsLeader()
			current = current && b.srv.JetStreamIsCurrent()
		}
		leader = leader && asked > 0
		if leader && current && c.placeable() {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatal("brokers: JetStream has no leader after 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// placeable reports whether a stream replicated on every running broker can
// be made. The meta leader and its followers being current is not enough
// when a broker runs in a child process: the leader may not have heard that
// broker's JetStream yet, and a node's first stream is refused with "no
// suitable peers for placement".
func (c *Brokers) placeable() bool {
	running := 0
	for _, b := range c.bs {
		if b.running() {
			running++
		}
	}
	nc, err := nats.Connect(c.URL(), nats.Timeout(time.Second))
	if err != nil {
		return false
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	const probe = "CLUSTERTEST_READY"
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: probe, Subjects: []string{"clustertest.ready"}, Storage: jetstream.MemoryStorage, Replicas: running,
	})
	if err != nil {
		return false
	}
	return js.DeleteStream(ctx, probe) == nil
}

// All returns the three brokers.
func (c *Brokers) All() []*Broker { return c.bs }

// URL is every broker's client URL, comma-separated.
func (c *Brokers) URL() string {
	urls := make([]string, len(c.bs))
	for i, b := range c.bs {
		urls[i] = b.URL()
	}
	return strings.Join(urls, ",")
}

// Replicas is 3: every stream and bucket on every broker.
func (c *Brokers) Replicas() int { return len(c.bs) }

// StreamLeader is the broker that leads stream (its name), or nil while
// none does.
func (c *Brokers) StreamLeader(stream string) *Broker {
	for _, b := range c.bs {
		if !b.child && b.running() && b.srv.JetStreamIsStreamLeader("$G", stream) {
			return b
		}
	}
	return nil
}

// StepDown makes stream's leader step down, as an operator's `nats stream
// cluster step-down` does, and waits until another broker leads it. It
// returns the old and the new leader's names.
//
// It first waits until every running broker's copy of the stream is
// current, as an operator would: a broker that came back a moment ago may
// still be catching up, and with it unable to lead, the leader that stepped
// down can win the election again. If it does, it is asked again.
func (c *Brokers) StepDown(stream string) (from, to string) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if old := c.StreamLeader(stream); old != nil && c.streamCurrent(stream) {
			if err := old.srv.JetStreamStepdownStream("$G", stream); err != nil {
				c.t.Fatalf("step down %s: %v", stream, err)
			}
			// The election takes a moment; the same leader for a second
			// after it means it won the election again.
			stepped := time.Now()
			for time.Since(stepped) < 5*time.Second {
				l := c.StreamLeader(stream)
				if l != nil && l != old {
					return old.name, l.name
				}
				if l == old && time.Since(stepped) > time.Second {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("stream %s: no other leader within 20 s (replicas current: %v)", stream, c.streamCurrent(stream))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// streamCurrent reports whether every running broker's copy of stream is
// current with its leader.
func (c *Brokers) streamCurrent(stream string) bool {
	for _, b := range c.bs {
		if !b.child && b.running() && !b.srv.JetStreamIsStreamCurrent("$G", stream) {
			return false
		}
	}
	return true
}

// BrokerOf is the broker node n is connected to now, or nil if none.
func (c *Brokers) BrokerOf(n *Node) *Broker {
	c.t.Helper()
	for _, b := range c.bs {
		if b.child || !b.running() {
			continue
		}
		cz, err := b.srv.Connz(&natsserver.ConnzOptions{})
		if err != nil {
			c.t.Fatalf("broker %s: connz: %v", b.name, err)
		}
		for _, ci := range cz.Conns {
			if ci.Name == "xhrsse "+n.Name() {
				return b
			}
		}
	}
	return nil
}

// MoveLeader makes to the leader of stream, as an operator's `nats stream
// cluster step-down --preferred` does, and waits until it is and every
// copy of the stream is current (b1 may be a child process, whose state
// only the JetStream API tells).
func (c *Brokers) MoveLeader(stream string, to *Broker) {
	c.t.Helper()
	nc, err := nats.Connect(c.URL(), nats.Name("clustertest"))
	if err != nil {
		c.t.Fatalf("move leader: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatalf("move leader: %v", err)
	}
	req := fmt.Appendf(nil, `{"placement":{"preferred":%q}}`, to.name)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s, err := js.Stream(ctx, stream)
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = s.Info(ctx)
		}
		cancel()
		if err == nil && info.Cluster != nil {
			current := len(info.Cluster.Replicas) == len(c.bs)-1
			for _, r := range info.Cluster.Replicas {
				current = current && r.Current && !r.Offline
			}
			if !current {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			if info.Cluster.Leader == to.name {
				return
			}
			_, _ = nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+stream, req, 2*time.Second)
		}
		time.Sleep(500 * time.Millisecond)
	}
	c.t.Fatalf("stream %s: %s did not become its leader in 30 s", stream, to.name)
}
