package clustertest

import (
	"io"
	"net"
	"net/url"
	"os/exec"
	"strconv"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// NATS is what nodes join: one Broker, or a Brokers cluster of three.
type NATS interface {
	// URL is where nodes connect: every broker's client URL, comma-separated.
	URL() string
	// Replicas is how many brokers keep each stream and bucket.
	Replicas() int
}

// A Broker is an embedded nats-server with JetStream on a loopback port,
// storing into a directory of the test's: alone (StartBroker), or one of a
// cluster (StartBrokers).
type Broker struct {
	t    testing.TB
	name string
	dir  string
	port int
	// route is this broker's cluster port and routes every broker's, when
	// it is one of a cluster; else route is 0.
	route  int
	routes []*url.URL
	srv    *natsserver.Server // nil for a child
	// child: the broker runs in a child process (child.go), which Kill
	// ends with SIGKILL; cmd is that process while it runs.
	child bool
	cmd   *exec.Cmd
	stdin io.WriteCloser // closing it stops the child
}

// StartBroker starts a broker on a free port; the test's cleanup stops it.
func StartBroker(t testing.TB) *Broker {
	t.Helper()
	b := &Broker{t: t, name: "b", dir: t.TempDir(), port: -1}
	b.Start()
	t.Cleanup(b.Stop)
	return b
}

// Start runs the broker, on the port it had before if it ran already, with
// the same store: after Stop or Kill, a restart that nodes reconnect to.
func (b *Broker) Start() {
	b.t.Helper()
	if b.child {
		b.startChild()
		return
	}
	opts := b.options()
	var err error
	for range 50 { // the old port may linger a moment
		if b.srv, err = natsserver.NewServer(opts); err != nil {
			b.t.Fatalf("broker: %v", err)
		}
		go b.srv.Start()
		if b.srv.ReadyForConnections(10 * time.Second) {
			break
		}
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
		time.Sleep(100 * time.Millisecond)
	}
	if !b.srv.Running() {
		b.t.Fatal("broker did not start")
	}
	b.port = b.srv.Addr().(*net.TCPAddr).Port
}

// options are the broker's nats-server options.
func (b *Broker) options() *natsserver.Options {
	opts := &natsserver.Options{
		ServerName: b.name, Host: "127.0.0.1", Port: b.port, JetStream: true, StoreDir: b.dir,
		NoLog: true, NoSigs: true,
		// A client connection gone silent (a partition TCP does not
		// notice) is dropped after two unanswered pings, as
		// docs/SCALING.md advises, rather than the default two minutes:
		// until then its subscriptions take requests that get no answer.
		PingInterval: 2 * time.Second, MaxPingsOut: 2,
	}
	if b.route != 0 {
		// NoAdvertise: a node knows the brokers it was given and no
		// others, so a proxy between it and them (a partition) cannot be
		// bypassed by a URL the brokers told it.
		opts.Cluster = natsserver.ClusterOpts{Name: "xhrsse", Host: "127.0.0.1", Port: b.route, NoAdvertise: true}
		opts.Routes = b.routes
	}
	return opts
}

// Stop shuts the broker down and waits until it has; the nodes lose it.
func (b *Broker) Stop() {
	if b.child {
		b.stopChild(false)
		return
	}
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
}

// running reports whether the broker runs now.
func (b *Broker) running() bool {
	if b.child {
		return b.cmd != nil
	}
	return b.srv != nil && b.srv.Running()
}

// URL is the broker's client URL, "nats://127.0.0.1:PORT"; it survives a
// restart.
func (b *Broker) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(b.port) }

// Replicas is 1 for a broker alone, 3 for one of a cluster.
func (b *Broker) Replicas() int {
	if b.route != 0 {
		return len(b.routes)
	}
	return 1
}

// Name is the broker's server name ("b1").
func (b *Broker) Name() string { return b.name }

// Server is the running nats-server, for its monitoring calls; nil for a
// broker in a child process.
func (b *Broker) Server() *natsserver.Server { return b.srv }
