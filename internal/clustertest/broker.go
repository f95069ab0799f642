package clustertest

import (
	"net"
	"net/url"
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
	srv    *natsserver.Server
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
// the same store: after Stop, a restart that nodes reconnect to.
func (b *Broker) Start() {
	b.t.Helper()
	opts := &natsserver.Options{
		ServerName: b.name, Host: "127.0.0.1", Port: b.port, JetStream: true, StoreDir: b.dir,
		NoLog: true, NoSigs: true,
	}
	if b.route != 0 {
		// NoAdvertise: a node knows the brokers it was given and no
		// others, so a proxy between it and them (a partition) cannot be
		// bypassed by a URL the brokers told it.
		opts.Cluster = natsserver.ClusterOpts{Name: "xhrsse", Host: "127.0.0.1", Port: b.route, NoAdvertise: true}
		opts.Routes = b.routes
	}
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

// Stop shuts the broker down and waits until it has; the nodes lose it.
func (b *Broker) Stop() {
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
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

// Server is the running nats-server, for its monitoring calls.
func (b *Broker) Server() *natsserver.Server { return b.srv }
