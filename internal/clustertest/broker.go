package clustertest

import (
	"net"
	"strconv"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// A Broker is an embedded nats-server with JetStream on a loopback port,
// storing into a directory of the test's.
type Broker struct {
	t    testing.TB
	dir  string
	port int
	srv  *natsserver.Server
}

// StartBroker starts a broker on a free port; the test's cleanup stops it.
func StartBroker(t testing.TB) *Broker {
	t.Helper()
	b := &Broker{t: t, dir: t.TempDir(), port: -1}
	b.Start()
	t.Cleanup(b.Stop)
	return b
}

// Start runs the broker, on the port it had before if it ran already, with
// the same store: after Stop, a restart that nodes reconnect to.
func (b *Broker) Start() {
	b.t.Helper()
	opts := &natsserver.Options{
		Host: "127.0.0.1", Port: b.port, JetStream: true, StoreDir: b.dir,
		NoLog: true, NoSigs: true,
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
