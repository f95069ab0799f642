// Command loadgen holds N SSE streams against an xhrsse server (or a
// baseline, see cmd/baseline) on this machine, chats and transfers at a set
// rate for a bounded time, and reports what arrived and what it cost:
//
//	loadgen -url http://127.0.0.1:8080 -n 1000 -duration 20s -chat-rate 1 -pid $(pgrep -n xhrsse-server)
//
// Against a cluster, -url lists every node and -pid every process (nodes
// and broker): the streams are spread over the nodes and the costs summed.
//
// It refuses any target that is not loopback and always stops by itself.
// With -compare it instead reads -json reports (files) and prints them side
// by side with ratios; with -saturation, the outcome of a rate sweep; with
// -capacity, the largest N each server held in a sweep over N (-held: exit
// status 3 unless most of the reports given, one step's windows, meet those
// criteria); with -summary,
// a line a report, the load generator's own CPU included.
package main

import (
	"context"
	"encoding/json"
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

	"github.com/xhrsse/xhrsse/internal/loadgen"
)

// errNotHeld: a -held check failed; the exit status tells a script so.
var errNotHeld = errors.New("not held")

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, errNotHeld) {
		os.Exit(3)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg      loadgen.Config
		channels string
		pids     string
		asJSON   = fs.Bool("json", false, "print the report as JSON instead of a table")
		compare  = fs.Bool("compare", false, "compare the -json reports named as arguments (medians of repeats, ratios)")
		saturate = fs.Bool("saturation", false, "summarise a rate sweep from the -json reports named as arguments")
		capacity = fs.Bool("capacity", false, "summarise a sweep over N from the -json reports named as arguments: the largest N each server held")
		held     = fs.Bool("held", false, "exit with status 3 unless most of the -json reports named as arguments (the windows of one step) meet the capacity criteria")
		summary  = fs.Bool("summary", false, "print one line for each -json report named as argument")
		refs     = fs.String("ref", "raw,r3labs", "labels the comparison divides by")
		verbose  = fs.Bool("v", false, "log progress to stderr")
	)
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "server base URL, or a cluster's nodes' URLs comma-separated (loopback only; streams spread round robin)")
	fs.BoolVar(&cfg.PostAnywhere, "post-anywhere", false, "with several -url: send each session's POSTs to another node than its stream's")
	fs.StringVar(&cfg.Label, "label", "xhrsse", "name of the server in the report")
	fs.IntVar(&cfg.Streams, "n", 1000, "streams to open and hold")
	fs.StringVar(&channels, "channels", "", "comma-separated channels to tune on every stream (default: all the server has)")
	fs.DurationVar(&cfg.Duration, "duration", 20*time.Second, "measurement window once every stream is open (the run's hard cap is this plus ramp timeout, drain and 30 s)")
	fs.DurationVar(&cfg.RampTimeout, "ramp-timeout", 60*time.Second, "longest time to open the streams")
	fs.IntVar(&cfg.Concurrency, "concurrency", 64, "streams opened at once")
	fs.Float64Var(&cfg.ChatRate, "chat-rate", 1, "chat messages a second during the window (0: none)")
	fs.Int64Var(&cfg.BulkBytes, "bulk-bytes", 0, "size of the bulk transfers made one after another during the window (0: none)")
	fs.StringVar(&cfg.BulkVia, "bulk-via", loadgen.BulkSSE, `"sse" (POST /sessions/ID/bulk) or "get" (GET /debug/blob, raw baseline only)`)
	fs.StringVar(&pids, "pid", "", "server process id, to report its CPU and memory; comma-separated for several (a cluster's nodes and broker), summed")
	fs.IntVar(&cfg.LocalAddrs, "local-addrs", 4, "spread source addresses over 127.0.0.1 … 127.0.0.K")
	fs.DurationVar(&cfg.Drain, "drain", 5*time.Second, "longest wait after the window for chats in flight")
	fs.Float64Var(&cfg.KeepUp, "keep-up", 0.95, "fraction of expected ticks that must arrive to count as keeping up")
	if err := fs.Parse(args); err != nil {
		return err
	}
	refList := strings.Split(*refs, ",")
	if *compare || *saturate || *capacity || *held || *summary {
		reports, err := loadgen.ReadReports(fs.Args()...)
		if err != nil {
			return err
		}
		if len(reports) == 0 {
			return fmt.Errorf("no reports given")
		}
		switch {
		case *summary:
			for _, r := range reports {
				fmt.Fprintln(stdout, r.Line())
			}
			return nil
		case *saturate:
			return loadgen.WriteSaturation(stdout, reports, refList)
		case *capacity:
			return loadgen.WriteCapacity(stdout, reports, refList)
		case *held:
			ok, whys := loadgen.HeldByMost(reports)
			for _, why := range whys {
				fmt.Fprintln(stdout, why)
			}
			if !ok {
				return errNotHeld
			}
			return nil
		}
		return loadgen.WriteComparison(stdout, reports, refList)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if channels != "" {
		cfg.Channels = strings.Split(channels, ",")
	}
	if pids != "" {
		for p := range strings.SplitSeq(pids, ",") {
			pid, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || pid <= 0 {
				return fmt.Errorf("-pid %q: want process ids separated by commas", pids)
			}
			cfg.PIDs = append(cfg.PIDs, pid)
		}
	}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.WriteText(stdout)
}
