// Package loadgen is the core of cmd/loadgen: it opens many SSE streams
// against an xhrsse server (or a baseline speaking the same API subset),
// chats and requests bulk transfers at a set rate for a bounded time, and
// reports what arrived, how late, and what the server process spent.
//
// It only ever targets loopback, and every run ends by itself: Run's
// context has a hard deadline derived from the configuration. It runs on
// Linux only: it reads its streams with epoll and costs from /proc.
package loadgen

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config describes one run. Zero fields take the defaults noted.
type Config struct {
	// URL is the server's base URL, e.g. "http://127.0.0.1:8080", or for a
	// cluster the base URLs of its nodes separated by commas; each must be
	// loopback (see CheckLoopback). Streams are spread over the nodes round
	// robin, and each session's POSTs go to its stream's node (see
	// PostAnywhere).
	URL string
	// PostAnywhere sends each session's POSTs (create, chat, bulk) to a
	// node other than the one holding its stream, so that the cluster must
	// forward them; it needs more than one URL.
	PostAnywhere bool
	// Label names the server in the report ("xhrsse", "raw", "r3labs").
	Label string
	// Streams is how many SSE streams to open and hold (N).
	Streams int
	// Channels are tuned on every stream; nil means every channel the
	// server lists in GET /channels.
	Channels []string
	// Duration is the measurement window, after every stream is open.
	Duration time.Duration
	// RampTimeout bounds opening the streams; default 60 s.
	RampTimeout time.Duration
	// Concurrency is how many streams are opened at once; default 64.
	Concurrency int
	// ChatRate is chat messages a second during the window; 0: none.
	ChatRate float64
	// BulkBytes is the size of each bulk transfer during the window; 0:
	// none. BulkVia is BulkSSE (default) or BulkGet.
	BulkBytes int64
	BulkVia   string
	// PID is the server's process id, to report its CPU and memory; 0: not
	// reported.
	PID int
	// PIDs are more server processes (a cluster's other nodes, the broker)
	// whose CPU and memory are added to PID's; the report keeps each one's
	// figures too.
	PIDs []int
	// LocalAddrs spreads the streams' source addresses over 127.0.0.1 …
	// 127.0.0.LocalAddrs, so that many runs in a row do not run out of
	// ephemeral ports (about 28,000 per source address) while old
	// connections sit in TIME_WAIT. Only for an IPv4 target; default 4.
	LocalAddrs int
	// Drain is how long to wait after the window for chats still in flight
	// to reach every stream; default 5 s.
	Drain time.Duration
	// KeepUp is the fraction of expected ticks that must arrive for the
	// server to count as keeping up; default 0.95.
	KeepUp float64
	// Logger receives progress; nil logs nothing.
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Streams < 1 {
		return errors.New("loadgen: need at least one stream")
	}
	if c.Duration <= 0 {
		return errors.New("loadgen: duration must be positive")
	}
	if c.ChatRate < 0 || c.ChatRate > 1000 {
		return fmt.Errorf("loadgen: chat rate %v must be in [0, 1000]", c.ChatRate)
	}
	if c.BulkBytes < 0 {
		return errors.New("loadgen: bulk bytes must not be negative")
	}
	switch c.BulkVia {
	case "":
		c.BulkVia = BulkSSE
	case BulkSSE, BulkGet:
	default:
		return fmt.Errorf("loadgen: bulk via %q: want %q or %q", c.BulkVia, BulkSSE, BulkGet)
	}
	if c.RampTimeout <= 0 {
		c.RampTimeout = 60 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.LocalAddrs <= 0 {
		c.LocalAddrs = 4
	}
	c.LocalAddrs = min(c.LocalAddrs, 254)
	if c.Drain <= 0 {
		c.Drain = 5 * time.Second
	}
	if c.KeepUp <= 0 || c.KeepUp > 1 {
		c.KeepUp = 0.95
	}
	if c.Label == "" {
		c.Label = "server"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// hardCap is the longest a run may take, whatever happens.
func (c *Config) hardCap() time.Duration {
	return c.RampTimeout + c.Duration + c.Drain + 30*time.Second
}
