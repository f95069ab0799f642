package main

import (
	"github.com/xhrsse/xhrsse/internal/routeport"

	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// A broker is a NATS server the nodes share, embedded in the launcher's
// process so that `make cluster` needs nothing but Go: no nats-server binary
// from the distribution, no container. JetStream is on, because the nodes
// keep sessions and the replay window in it. There are one or three; three
// form a NATS cluster that keeps every stream and bucket on all three.
type broker struct {
	ns      *natsserver.Server
	monitor string // the monitoring endpoint's base URL; empty when off
	dir     string // JetStream store
	ownDir  bool   // dir is a temporary directory the broker removes
}

// startBrokers starts n brokers (1, or 3 for a NATS cluster with no single
// point of failure) and returns once JetStream answers. The first listens on
// addr, the others on the ports after it (any free one when addr's port is
// 0); each stores into its own directory under storeDir, or into a new
// temporary directory when storeDir is empty. monitorAddr, if set, serves
// the first one's monitoring endpoints. Clustered brokers are routed to one
// another over loopback ports of their own.
func startBrokers(n int, addr, monitorAddr, storeDir string, log *slog.Logger) (_ []*broker, err error) {
	host, port, err := hostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("broker address: %w", err)
	}
	var routes []*url.URL
	var routePorts []int
	if n > 1 {
		for range n {
			p, err := routeport.Free(host)
			if err != nil {
				return nil, fmt.Errorf("broker routes: %w", err)
			}
			routePorts = append(routePorts, p)
			routes = append(routes, &url.URL{Scheme: "nats-route", Host: net.JoinHostPort(host, strconv.Itoa(p))})
		}
	}
	var bs []*broker
	defer func() {
		if err != nil {
			for _, b := range bs {
				b.stop()
			}
		}
	}()
	for i := range n {
		opts := &natsserver.Options{
			ServerName: fmt.Sprintf("xhrsse-dev-%d", i+1),
			Host:       host,
			Port:       port,
			JetStream:  true,
			NoSigs:     true, // the launcher owns SIGINT and SIGTERM
			// A client connection gone silent (a partition TCP does not
			// notice) is dropped after two unanswered pings rather than
			// the default two minutes, as docs/SCALING.md advises.
			PingInterval: 2 * time.Second, MaxPingsOut: 2,
		}
		if port != natsserver.RANDOM_PORT {
			opts.Port = port + i
		}
		if n > 1 {
			opts.Cluster = natsserver.ClusterOpts{Name: "xhrsse-dev", Host: host, Port: routePorts[i]}
			opts.Routes = routes
		}
		if monitorAddr != "" && i == 0 {
			if opts.HTTPHost, opts.HTTPPort, err = hostPort(monitorAddr); err != nil {
				return nil, fmt.Errorf("broker monitor address: %w", err)
			}
		}
		dir := storeDir
		if dir != "" && n > 1 {
			dir = filepath.Join(storeDir, opts.ServerName)
		}
		b, err := startBroker(opts, dir, log)
		if err != nil {
			return nil, err
		}
		bs = append(bs, b)
	}
	if n > 1 {
		if err := jetStreamReady(bs, 30*time.Second); err != nil {
			return nil, err
		}
	}
	return bs, nil
}

// jetStreamReady waits until the brokers' JetStream has a leader that every
// one of them follows, so that the nodes can make their stream and buckets.
func jetStreamReady(bs []*broker, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		leader, current := false, true
		for _, b := range bs {
			leader = leader || b.ns.JetStreamIsLeader()
			current = current && b.ns.JetStreamIsCurrent()
		}
		if leader && current {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("brokers: JetStream has no leader after %v", within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startBroker starts NATS with opts, storing into storeDir, or into a new
// temporary directory when storeDir is empty. It returns once the broker
// accepts connections.
func startBroker(opts *natsserver.Options, storeDir string, log *slog.Logger) (*broker, error) {
	var err error
	b := &broker{dir: storeDir}
	if b.dir == "" {
		if b.dir, err = os.MkdirTemp("", "xhrsse-nats-"); err != nil {
			return nil, fmt.Errorf("broker store: %w", err)
		}
		b.ownDir = true
	}
	opts.StoreDir = b.dir
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		b.removeDir()
		return nil, fmt.Errorf("broker: %w", err)
	}
	ns.SetLoggerV2(natsLogger{log.With("from", "nats", "broker", opts.ServerName)}, false, false, false)
	go ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		ns.WaitForShutdown()
		b.removeDir()
		return nil, errors.New("broker: not ready for connections within 15 s")
	}
	b.ns = ns
	if a := ns.MonitorAddr(); a != nil {
		b.monitor = "http://" + a.String()
	}
	return b, nil
}

// hostPort splits "host:port"; port 0 becomes nats-server's "any free
// port", since it reads 0 as "the default".
func hostPort(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", addr)
	}
	if port == 0 {
		port = natsserver.RANDOM_PORT
	}
	return host, port, nil
}

// url is where the nodes connect, e.g. nats://127.0.0.1:4222.
func (b *broker) url() string { return b.ns.ClientURL() }

// stop shuts the broker down and waits for it; the store goes too when it
// was a temporary directory.
func (b *broker) stop() {
	b.ns.Shutdown()
	b.ns.WaitForShutdown()
	b.removeDir()
}

func (b *broker) removeDir() {
	if b.ownDir {
		os.RemoveAll(b.dir)
	}
}

// natsLogger hands the broker's log to slog. Its notices are start-up chat
// ("Starting nats-server", "Listening for client connections"), so they go
// to debug; warnings and errors stay visible.
type natsLogger struct{ log *slog.Logger }

func (l natsLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
