package loadgen

import (
	"fmt"
	"io"
	"strings"
)

// Capacity criteria: a run at N streams holds if every stream stayed open,
// at least CapacityDelivered of the ticks and of the chat deliveries
// arrived, and chat p99 stayed within CapacityP99 ms.
//
// Ticks lost are counted exactly from the ids (holes in the numbering and
// the misses a gap event reports), as a fraction of the ticks received. The
// ticks counted against the nominal rate cannot be that exact: every
// stream's ticks come from the same three tickers, so a 10 s window is off
// by up to a tick per channel and edge on every stream at once (about 1-3 %).
// That count only has to reach CapacityRate: it catches a server whose
// tickers fall behind without a hole in the ids; one whose queues grow fails
// the chat p99 first.
const (
	CapacityDelivered = 0.999
	CapacityRate      = 0.95
	CapacityP99       = 200.0
)

// Held reports whether r meets the capacity criteria, and if not, why.
func Held(r *Report) (bool, string) {
	var why []string
	if r.Held < r.Wanted || r.ConnectErrors > 0 || r.Drops > 0 {
		why = append(why, fmt.Sprintf("%d of %d held", r.Held, r.Wanted))
	}
	if lost := r.IDs.Missing + r.IDs.ServerMissed; float64(lost) > (1-CapacityDelivered)*float64(r.Ticks+lost) {
		why = append(why, fmt.Sprintf("%.2f%% of ticks lost", 100*float64(lost)/float64(r.Ticks+lost)))
	}
	if r.Delivered < CapacityRate {
		why = append(why, fmt.Sprintf("%.2f%% of the nominal tick rate", 100*r.Delivered))
	}
	if c := r.Chat; r.ChatRate > 0 {
		switch {
		case c.Expected == 0 || c.Latency.Count == 0:
			why = append(why, "no chat delivered")
		case float64(c.Deliveries) < CapacityDelivered*float64(c.Expected):
			why = append(why, fmt.Sprintf("%.2f%% of chats", 100*float64(c.Deliveries)/float64(c.Expected)))
		}
		if c.Latency.Count > 0 && c.Latency.P99 > CapacityP99 {
			why = append(why, fmt.Sprintf("chat p99 %.0f ms", c.Latency.P99))
		}
	}
	return len(why) == 0, strings.Join(why, ", ")
}

// HeldByMost reports whether most of rs, the windows of one step, meet the
// capacity criteria, and why each window that did not failed.
func HeldByMost(rs []*Report) (bool, []string) {
	var whys []string
	for _, r := range rs {
		if ok, why := Held(r); !ok {
			whys = append(whys, fmt.Sprintf("%s at N=%d not held: %s", r.Label, r.Wanted, why))
		}
	}
	return 2*len(whys) < len(rs), whys
}

// Capacity finds, per server, the largest N held (Best.Wanted) by most of
// its windows; Best is the window with the middle chat p99 of those.
func Capacity(reports []*Report) []SweepResult {
	return sweep(reports, func(r *Report) float64 { return float64(r.Wanted) },
		func(r *Report) float64 { return r.Chat.Latency.P99 },
		func(r *Report) bool { ok, _ := Held(r); return ok })
}

// WriteCapacity prints the sweep's outcome: per server the largest N held,
// its cost there and the load generator's, why the next step failed, and
// the ratio of the largest N to each reference server's.
func WriteCapacity(w io.Writer, reports []*Report, refs []string) error {
	return writeSweep(w, Capacity(reports), refs, sweepTable{
		columns: []string{"largest N held", "CPU there (% core)", "chat p99 there (ms)", "writes/s per stream", "loadgen CPU there"},
		best: func(b *Report) []string {
			cpu, writes := "-", "-"
			if b.Server != nil {
				cpu = formatValue(b.Server.CPUPercent)
				if b.Server.WritesPerSec > 0 && b.Held > 0 {
					writes = formatValue(b.Server.WritesPerSec / float64(b.Held))
				}
			}
			return []string{fmt.Sprint(b.Wanted), cpu, formatValue(b.Chat.Latency.P99), writes, loadgenCost(b)}
		},
		failure: "first failure",
		failed: func(f *Report) string {
			_, why := Held(f)
			return fmt.Sprintf("N=%d: %s", f.Wanted, why)
		},
		score: func(b *Report) float64 { return float64(b.Wanted) },
	})
}
