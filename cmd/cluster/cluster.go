package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// config is what one launch needs; main fills it from flags, tests by hand.
type config struct {
	serverBin  string        // the xhrsse-server binary
	nodes      int           // how many server processes
	addr       string        // the proxy's listen address
	brokers    int           // how many brokers: 1, or 3 clustered (0: 1)
	natsAddr   string        // the first broker's listen address
	monitor    string        // the broker's monitoring address; empty: none
	storeDir   string        // JetStream store; empty: a temporary directory
	nodeArgs   []string      // extra flags for every node
	startWait  time.Duration // longest wait for a node's listening line
	stopGrace  time.Duration // longest wait for a node after SIGTERM
	log        *slog.Logger  // the launcher's own log
	nodeOutput io.Writer     // where the nodes' lines go, prefixed
}

// A cluster is a running broker, its nodes and the proxy in front of them.
type cluster struct {
	broker   *broker // the first of brokers
	brokers  []*broker
	nodes    []*node
	proxy    *proxy
	srv      *http.Server
	served   chan error // the proxy server's Serve result
	proxyURL string
	grace    time.Duration
	log      *slog.Logger
	stopOnce sync.Once
	stopErr  error
}

// launch starts the broker, then the nodes one after another (each joins
// the broker before the next starts, so a failure shows early and on its
// own), then the proxy. On error whatever started is stopped again.
func launch(ctx context.Context, cfg config) (_ *cluster, err error) {
	if cfg.nodes < 1 {
		return nil, fmt.Errorf("need at least one node, not %d", cfg.nodes)
	}
	if cfg.startWait <= 0 {
		cfg.startWait = 30 * time.Second
	}
	if cfg.stopGrace <= 0 {
		cfg.stopGrace = 15 * time.Second
	}
	c := &cluster{grace: cfg.stopGrace, log: cfg.log, served: make(chan error, 1)}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	if cfg.brokers == 0 {
		cfg.brokers = 1
	}
	if cfg.brokers != 1 && cfg.brokers != 3 {
		return nil, fmt.Errorf("brokers: 1 or 3, not %d", cfg.brokers)
	}
	if c.brokers, err = startBrokers(cfg.brokers, cfg.natsAddr, cfg.monitor, cfg.storeDir, cfg.log); err != nil {
		return nil, err
	}
	c.broker = c.brokers[0]
	out := &lineWriter{w: cfg.nodeOutput}
	for k := 1; k <= cfg.nodes; k++ {
		name := fmt.Sprintf("node%d", k)
		// Every node knows every broker, and keeps its streams and
		// buckets on all of them.
		args := append([]string{"-addr", "127.0.0.1:0", "-nats", c.natsURL(), "-nats-replicas", strconv.Itoa(len(c.brokers)), "-node", name}, cfg.nodeArgs...)
		sctx, cancel := context.WithTimeout(ctx, cfg.startWait)
		n, err := startNode(sctx, cfg.serverBin, name, args, out)
		cancel()
		if err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, n)
	}
	if c.proxy, err = newProxy(c.nodes, cfg.log); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	c.proxyURL = "http://" + ln.Addr().String()
	c.srv = newProxyServer(c.proxy, cfg.log)
	go func() { c.served <- c.srv.Serve(ln) }()
	return c, nil
}

// stop ends everything in the order that loses nothing: the nodes first (on
// SIGTERM each ends its streams with bye and may still need the broker to
// hand its sessions over), then the proxy, whose streams have ended with
// the nodes, then the broker. It waits for every child. Safe to call twice.
func (c *cluster) stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, n := range c.nodes {
			wg.Go(func() {
				if err := n.stop(c.grace); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if c.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := c.srv.Shutdown(ctx); err != nil {
				c.srv.Close()
			}
			cancel()
			if err := <-c.served; !errors.Is(err, http.ErrServerClosed) {
				errs = append(errs, fmt.Errorf("proxy: %w", err))
			}
		}
		if c.proxy != nil {
			c.proxy.close()
		}
		for _, b := range c.brokers {
			b.stop()
		}
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// natsURL is every broker's client URL, comma-separated, as the nodes get it.
func (c *cluster) natsURL() string {
	urls := make([]string, len(c.brokers))
	for i, b := range c.brokers {
		urls[i] = b.url()
	}
	return strings.Join(urls, ",")
}

// nodeByName finds a node by name ("node2").
func (c *cluster) nodeByName(name string) *node {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// killLater SIGKILLs the named node after d, as a crash would, so that its
// clients can be watched reconnecting to the other nodes (-kill-after).
func (c *cluster) killLater(name string, d time.Duration) *time.Timer {
	return time.AfterFunc(d, func() {
		if n := c.nodeByName(name); n != nil && n.alive() {
			c.log.Warn("killing a node (SIGKILL), as -kill-after asks", "node", name, "pid", n.cmd.Process.Pid)
			n.kill()
		}
	})
}
