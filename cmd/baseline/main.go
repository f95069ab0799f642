// Command baseline runs one of the yardstick servers of the load benchmarks
// (see internal/baseline): a careful net/http SSE broadcaster that drains its
// queue into one write per wake-up (-kind raw), the same writing and flushing
// once per event (-kind raw-naive), or the same service on
// github.com/r3labs/sse/v2 (-kind r3labs). Both tick the
// same channels at the same rates as cmd/server (same -rate-* flags) and fan
// chat out to every session.
//
//	go run ./cmd/baseline -kind raw -addr 127.0.0.1:8081
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/xhrsse/xhrsse/internal/baseline"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	var (
		kind      = fs.String("kind", "raw", "which baseline: raw, raw-naive or r3labs")
		addr      = fs.String("addr", "127.0.0.1:8081", "listen address")
		pprofAddr = fs.String("pprof", "", "serve net/http/pprof on this separate address; off when empty")
	)
	channels := broadcast.DefaultChannels()
	rates := make([]*float64, len(channels))
	for i, c := range channels {
		rates[i] = fs.Float64("rate-"+c.Name, c.Rate, "ticks a second of channel "+c.Name)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	for i := range channels {
		channels[i].Rate = *rates[i]
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	var (
		b   baseline.Server
		err error
	)
	switch *kind {
	case "raw":
		b, err = baseline.NewRaw(channels...)
	case "raw-naive":
		b, err = baseline.NewRawNaive(channels...)
	case "r3labs":
		b, err = baseline.NewR3labs(channels...)
	default:
		return fmt.Errorf("-kind %q: want raw, raw-naive or r3labs", *kind)
	}
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		b.Close()
		return err
	}
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	if *pprofAddr != "" {
		pln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			ln.Close()
			b.Close()
			return fmt.Errorf("-pprof: %w", err)
		}
		m := http.NewServeMux()
		m.HandleFunc("/debug/pprof/", pprof.Index)
		m.HandleFunc("/debug/pprof/profile", pprof.Profile)
		psrv := &http.Server{Handler: m, ReadHeaderTimeout: 10 * time.Second}
		go psrv.Serve(pln)
		defer psrv.Close()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("listening", "kind", *kind, "url", "http://"+ln.Addr().String()+"/")
	select {
	case err = <-served:
	case <-ctx.Done():
		// A baseline does not say goodbye: it closes every connection.
		srv.Close()
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
			err = serr
		}
	}
	b.Close()
	return err
}
