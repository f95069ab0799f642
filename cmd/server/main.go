// Command server runs an xhrsse server: three channels of random characters,
// chat and bulk delivery over one SSE stream per session, steered by POSTs.
//
//	go run ./cmd/server -addr 127.0.0.1:8080
//
// The flags are read in flags.go; server.Start builds the server and
// Shutdown stops it on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/xhrsse/xhrsse/pkg/cluster"
	"github.com/xhrsse/xhrsse/pkg/server"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); errors.Is(err, flag.ErrHelp) {
		return
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if c.cluster != nil {
		// The cluster's seed comes before the hub, which ticks from it.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		node, err := cluster.Dial(ctx, *c.cluster)
		cancel()
		if err != nil {
			return err
		}
		c.log.Info("cluster", "node", node.Name(), "nats", c.cluster.URL)
		c.opts.Cluster = node // the server closes it from here on
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.Start(ctx, c.opts)
	if err != nil {
		return err
	}
	select {
	case <-srv.Done(): // serving failed; Shutdown says why
	case <-ctx.Done():
		c.log.Info("shutting down", "timeout", c.shutdownTimeout)
	}
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	c.log.Info("stopped", "err", err)
	return err
}
