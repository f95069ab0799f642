// Command cluster is a development launcher for xhrsse's NATS cluster mode
// (`make cluster`): it starts three embedded NATS brokers with JetStream,
// clustered over loopback routes (or one, -brokers 1), N server processes
// (the real binary) joined to them, and a round-robin reverse proxy in front
// of them with no stickiness, then prints the URLs.
//
//	cluster -nodes 3 -addr 127.0.0.1:8080 -server bin/xhrsse-server [-- extra server flags]
//
// Point a browser or the TUI at the proxy: every request goes to the next
// node, so a session's POSTs land on other nodes than its stream. Ctrl-C or
// SIGTERM stops the nodes (SIGTERM, waited for), the proxy and the brokers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); errors.Is(err, flag.ErrHelp) {
		return
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: cluster [flags] [-- flags for every server node]")
		fs.PrintDefaults()
	}
	cfg := config{nodeOutput: stderr}
	fs.StringVar(&cfg.serverBin, "server", "bin/xhrsse-server", "the xhrsse server binary to run as each node")
	fs.IntVar(&cfg.nodes, "nodes", 3, "how many server processes")
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "the round-robin proxy's listen address (port 0: any free port)")
	fs.IntVar(&cfg.brokers, "brokers", 3, "how many embedded NATS brokers: 3 (a NATS cluster over loopback routes, every stream and bucket on all three) or 1")
	fs.StringVar(&cfg.natsAddr, "nats-addr", "127.0.0.1:4222", "the first embedded NATS broker's listen address; the others listen on the next ports (port 0: any free port)")
	fs.StringVar(&cfg.monitor, "nats-monitor", "", "serve the first broker's monitoring endpoints (/varz, /jsz) on this address, e.g. 127.0.0.1:8222 (empty: off)")
	fs.StringVar(&cfg.storeDir, "store", "", "JetStream store directory (default: a temporary directory, removed at the end)")
	fs.DurationVar(&cfg.startWait, "start-timeout", 30*time.Second, "longest wait for each node to listen")
	fs.DurationVar(&cfg.stopGrace, "stop-timeout", 15*time.Second, "longest wait for each node after SIGTERM before SIGKILL")
	killAfter := fs.Duration("kill-after", 0, "SIGKILL node1 this long after start, to watch its clients move to other nodes (0: never)")
	logLevel := fs.String("log-level", "info", "the launcher's and the broker's log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.nodeArgs = fs.Args()
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	cfg.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})).With("from", "cluster")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := launch(ctx, cfg)
	if err != nil {
		return err
	}
	printURLs(stdout, c)

	for _, n := range c.nodes {
		go watch(ctx, n, cfg.log)
	}
	if *killAfter > 0 {
		defer c.killLater("node1", *killAfter).Stop()
	}
	select {
	case <-ctx.Done():
	case err := <-c.served:
		c.served <- err // stop reads it again
		cfg.log.Error("proxy stopped", "err", err)
	}
	cfg.log.Info("stopping: nodes, proxy, broker")
	err = c.stop()
	cfg.log.Info("stopped")
	return err
}

// watch logs a node's exit if it comes before the launcher stops it.
func watch(ctx context.Context, n *node, log *slog.Logger) {
	select {
	case <-ctx.Done():
	case <-n.exited:
		if ctx.Err() == nil {
			log.Warn("node exited", "node", n.name, "err", n.err)
		}
	}
}

// printURLs tells the user where everything is and how to use it.
func printURLs(w io.Writer, c *cluster) {
	var urls, pids []string
	pids = append(pids, strconv.Itoa(os.Getpid()))
	fmt.Fprintf(w, "xhrsse cluster: %d nodes over NATS\n", len(c.nodes))
	fmt.Fprintf(w, "  proxy  %s/  round robin, no stickiness: open it in a browser\n", c.proxyURL)
	for _, n := range c.nodes {
		fmt.Fprintf(w, "  %-6s %s/  pid %d\n", n.name, n.url, n.cmd.Process.Pid)
		urls = append(urls, n.url)
		pids = append(pids, strconv.Itoa(n.cmd.Process.Pid))
	}
	for _, b := range c.brokers {
		fmt.Fprintf(w, "  nats   %s  JetStream in %s; in this process, pid %d (with the proxy)\n", b.url(), b.dir, os.Getpid())
	}
	if c.broker.monitor != "" {
		fmt.Fprintf(w, "  broker monitoring  %s/varz\n", c.broker.monitor)
	}
	fmt.Fprintf(w, "TUI:   bin/xhrsse-tui -server %s\n", c.proxyURL)
	fmt.Fprintf(w, "load:  go run ./cmd/loadgen -url %s -pid %s\n", strings.Join(urls, ","), strings.Join(pids, ","))
	fmt.Fprintln(w, "Ctrl-C stops everything.")
}
