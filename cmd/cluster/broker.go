package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// A broker is the NATS server the nodes share, embedded in the launcher's
// process so that `make cluster` needs nothing but Go: no nats-server binary
// from the distribution, no container. JetStream is on, because the nodes
// keep sessions and the replay window in it.
type broker struct {
	ns      *natsserver.Server
	monitor string // the monitoring endpoint's base URL; empty when off
	dir     string // JetStream store
	ownDir  bool   // dir is a temporary directory the broker removes
}

// startBroker starts NATS with JetStream on addr ("127.0.0.1:4222"; port 0
// picks a free one), storing into storeDir, or into a new temporary
// directory when storeDir is empty. With monitorAddr it also serves NATS's
// monitoring endpoints (/varz: messages and bytes through the broker), to
// see what crosses it. It returns once the broker accepts connections.
func startBroker(addr, monitorAddr, storeDir string, log *slog.Logger) (*broker, error) {
	host, port, err := hostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("broker address: %w", err)
	}
	opts := &natsserver.Options{
		ServerName: "xhrsse-dev",
		Host:       host,
		Port:       port,
		JetStream:  true,
		NoSigs:     true, // the launcher owns SIGINT and SIGTERM
	}
	if monitorAddr != "" {
		if opts.HTTPHost, opts.HTTPPort, err = hostPort(monitorAddr); err != nil {
			return nil, fmt.Errorf("broker monitor address: %w", err)
		}
	}
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
	ns.SetLoggerV2(natsLogger{log.With("from", "nats")}, false, false, false)
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
