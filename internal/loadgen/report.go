package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// A Report is the outcome of one run. Rates are over the measurement window,
// after every stream was open. MB are 10^6 bytes.
type Report struct {
	Label     string    `json:"label"`
	Target    string    `json:"target"` // the base URL; for a cluster, every node's, comma-separated
	StartedAt time.Time `json:"started_at"`
	Wanted    int       `json:"streams_wanted"`
	Channels  []string  `json:"channels"`
	TickRate  float64   `json:"tick_rate_per_stream"` // sum of the tuned channels' rates
	ChatRate  float64   `json:"chat_rate"`
	Ramp      float64   `json:"ramp_s"`   // from the start until every stream was open
	Window    float64   `json:"window_s"` // the measurement window

	Opened           int            `json:"streams_opened"`
	Held             int            `json:"streams_held"` // still open at the end of the window
	ConnectErrors    int            `json:"connect_errors"`
	LastConnectError string         `json:"last_connect_error,omitempty"`
	Drops            int            `json:"drops"` // streams that ended before the run did
	DropReasons      map[string]int `json:"drop_reasons,omitempty"`

	Events        int64   `json:"events"`
	EventsPerSec  float64 `json:"events_per_s"`
	Bytes         int64   `json:"bytes"`
	MBPerSec      float64 `json:"mb_per_s"`
	Ticks         int64   `json:"ticks"`
	ExpectedTicks float64 `json:"expected_ticks"`
	Delivered     float64 `json:"delivered"` // Ticks / ExpectedTicks

	Chat ChatReport  `json:"chat"`
	IDs  IDStats     `json:"ids"`
	Bulk *BulkReport `json:"bulk,omitempty"`

	// Nodes breaks the streams down by node, for more than one target.
	// PostAnywhere: each session's POSTs went to another node than its
	// stream's.
	Nodes        []NodeReport `json:"nodes,omitempty"`
	PostAnywhere bool         `json:"post_anywhere,omitempty"`

	// Server is the server's cost; for several processes (a cluster's
	// nodes and broker) their sum, and Servers holds each one's.
	Server  *ProcReport  `json:"server,omitempty"`
	Servers []ProcReport `json:"servers,omitempty"`
	Loadgen ProcReport   `json:"loadgen"`
	LoadAvg [2]float64   `json:"load_avg"` // one-minute load average at start and end
	// MachineCPU is what the whole machine used during the window, in % of
	// one core: minus the server and the load generator, the noise.
	MachineCPU float64 `json:"machine_cpu_percent"`
	FileLimit  uint64  `json:"file_limit"`

	// KeptUp: every stream held, no connect error, no drop, no gap,
	// duplicate or reordering, and at least the KeepUp fraction of the
	// expected ticks delivered.
	KeptUp bool `json:"kept_up"`
}

// ChatReport covers the chat messages posted during the window.
type ChatReport struct {
	Sent       int64          `json:"sent"`
	Failed     int64          `json:"failed"`
	LastError  string         `json:"last_error,omitempty"`
	Deliveries int64          `json:"deliveries"` // (message, stream) pairs received
	Expected   int64          `json:"expected"`   // sent × streams held
	Unmatched  int64          `json:"unmatched"`  // live chats not from this run
	Latency    LatencySummary `json:"latency"`    // from just before the POST to receipt
	// For a cluster, Latency split by where the stream was: on the node the
	// chat was posted to (Local) or on another, which had it over the
	// broker (Relayed).
	Local   *LatencySummary `json:"latency_local,omitempty"`
	Relayed *LatencySummary `json:"latency_relayed,omitempty"`
}

// NodeReport is one target's share of a multi-node run.
type NodeReport struct {
	URL    string `json:"url"`
	Opened int    `json:"streams_opened"`
	Held   int    `json:"streams_held"`
	Drops  int    `json:"drops"`
	Ticks  int64  `json:"ticks"` // over the window
	// ChatLatency covers the chats received by this node's streams.
	ChatLatency LatencySummary `json:"chat_latency"`
}

// ProcReport is a process's cost during the window.
type ProcReport struct {
	PID          int     `json:"pid,omitempty"`
	CPUPercent   float64 `json:"cpu_percent"` // of one core, over the window
	RSSBeforeKiB int64   `json:"rss_before_kib,omitempty"`
	RSSStartKiB  int64   `json:"rss_start_kib"`
	RSSEndKiB    int64   `json:"rss_end_kib"`
	// KiBPerStream is (RSS at the end of the window - RSS before the
	// ramp) / streams held.
	KiBPerStream float64 `json:"kib_per_stream,omitempty"`
	// Write syscalls (syscw) and the bytes they wrote (wchar) a second over
	// the window, from /proc/PID/io; absent when it could not be read.
	WritesPerSec     float64 `json:"writes_per_s,omitempty"`
	WriteBytesPerSec float64 `json:"write_bytes_per_s,omitempty"`
}

// WriteText writes the report as a small human-readable table.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, a...)) }
	p("server", "%s at %s", r.Label, r.Target)
	p("run", "N=%d, channels %s (%.4g ticks/s each stream), chat %.4g/s, ramp %.1f s, window %.1f s",
		r.Wanted, strings.Join(r.Channels, ","), r.TickRate, r.ChatRate, r.Ramp, r.Window)
	p("streams", "%d held of %d wanted (%d opened), %d connect errors, %d drops%s",
		r.Held, r.Wanted, r.Opened, r.ConnectErrors, r.Drops, reasons(r.DropReasons))
	if r.LastConnectError != "" {
		p("", "last connect error: %s", r.LastConnectError)
	}
	p("events", "%d (%.0f/s, %.2f MB/s); ticks %d = %.1f%% of expected", r.Events, r.EventsPerSec, r.MBPerSec, r.Ticks, 100*r.Delivered)
	if r.ChatRate > 0 {
		c := r.Chat
		p("chat", "%d sent, %d failed; delivered %d of %d; latency p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d samples)",
			c.Sent, c.Failed, c.Deliveries, c.Expected, c.Latency.P50, c.Latency.P99, c.Latency.Max, c.Latency.Count)
		if c.LastError != "" {
			p("", "last chat error: %s", c.LastError)
		}
		if c.Local != nil && c.Relayed != nil {
			p("", "on the node posted to: p50 %.1f ms, p99 %.1f ms (%d); on other nodes: p50 %.1f ms, p99 %.1f ms (%d)",
				c.Local.P50, c.Local.P99, c.Local.Count, c.Relayed.P50, c.Relayed.P99, c.Relayed.Count)
		}
	}
	for _, n := range r.Nodes {
		p("node", "%s: %d held of %d opened, %d drops, %d ticks; chat p50 %.1f ms, p99 %.1f ms",
			n.URL, n.Held, n.Opened, n.Drops, n.Ticks, n.ChatLatency.P50, n.ChatLatency.P99)
	}
	if r.PostAnywhere {
		p("", "every POST went to another node than its session's stream")
	}
	ids := r.IDs
	p("ids", "%d gaps (%d ids missing), %d duplicates, %d out of order, %d gap events (%d missed), %d without id",
		ids.Gaps, ids.Missing, ids.Duplicates, ids.OutOfOrder, ids.ServerGaps, ids.ServerMissed, ids.NoID)
	if b := r.Bulk; b != nil {
		p("bulk", "via %s: %d transfers of %d bytes, %.1f MB/s, %d errors, %d corrupt", b.Via, b.Transfers, b.Size, b.MBPerSec, b.Errors, b.Corrupt)
		if b.LastError != "" {
			p("", "last bulk error: %s", b.LastError)
		}
	}
	if s := r.Server; s != nil && len(r.Servers) == 0 {
		p("server process", "pid %d: CPU %.1f%% of a core; RSS %.1f MiB before, %.1f at window start, %.1f at end; %.1f KiB/stream",
			s.PID, s.CPUPercent, mib(s.RSSBeforeKiB), mib(s.RSSStartKiB), mib(s.RSSEndKiB), s.KiBPerStream)
		if s.WritesPerSec > 0 && r.Held > 0 {
			p("", "%.0f write syscalls/s (%.2f per stream), %.0f bytes/s per stream",
				s.WritesPerSec, s.WritesPerSec/float64(r.Held), s.WriteBytesPerSec/float64(r.Held))
		}
	} else if s != nil {
		p("server processes", "%d together: CPU %.1f%% of a core; RSS %.1f MiB before, %.1f at window start, %.1f at end; %.1f KiB/stream",
			len(r.Servers), s.CPUPercent, mib(s.RSSBeforeKiB), mib(s.RSSStartKiB), mib(s.RSSEndKiB), s.KiBPerStream)
		for _, e := range r.Servers {
			p("", "pid %d: CPU %.1f%%; RSS %.1f MiB before, %.1f at end", e.PID, e.CPUPercent, mib(e.RSSBeforeKiB), mib(e.RSSEndKiB))
		}
	}
	perEvent, _ := loadgenPerEvent(r)
	p("loadgen process", "CPU %.1f%% of a core (%.2f µs per event received); RSS %.1f MiB",
		r.Loadgen.CPUPercent, perEvent, mib(r.Loadgen.RSSEndKiB))
	other := r.MachineCPU - r.Loadgen.CPUPercent
	if r.Server != nil {
		other -= r.Server.CPUPercent
	}
	p("machine", "CPU %.1f%% of a core in all (%.1f%% other processes); load average %.2f at start, %.2f at end; file limit %d",
		r.MachineCPU, other, r.LoadAvg[0], r.LoadAvg[1], r.FileLimit)
	p("kept up", "%v", r.KeptUp)
	return tw.Flush()
}

// Line sums the report up in one line: what was held and delivered, and
// what the server and the load generator spent, so that a sweep's progress
// shows when the load generator nears the limit of its core.
func (r *Report) Line() string {
	server := "-"
	if r.Server != nil {
		server = fmt.Sprintf("%.1f%%", r.Server.CPUPercent)
	}
	perEvent, _ := loadgenPerEvent(r)
	return fmt.Sprintf("%s N=%d: %d held, ticks %.1f%%, chat p99 %.1f ms; server CPU %s, loadgen CPU %.1f%% (%.2f µs/event)",
		r.Label, r.Wanted, r.Held, 100*r.Delivered, r.Chat.Latency.P99, server, r.Loadgen.CPUPercent, perEvent)
}

func reasons(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func mib(kib int64) float64 { return float64(kib) / 1024 }
