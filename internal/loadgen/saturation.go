package loadgen

import (
	"fmt"
	"io"
	"strings"
)

// Saturation finds, per server, the highest tick rate it kept up with
// (Best.TickRate), going up from the lowest.
func Saturation(reports []*Report) []SweepResult {
	return sweep(reports, func(r *Report) float64 { return r.TickRate },
		func(r *Report) float64 { return r.Delivered }, func(r *Report) bool { return r.KeptUp })
}

// WriteSaturation prints the sweep's outcome with ratios of the highest
// sustained events/s to each reference server.
func WriteSaturation(w io.Writer, reports []*Report, refs []string) error {
	return writeSweep(w, Saturation(reports), refs, sweepTable{
		columns: []string{"highest ticks/s per stream kept up", "events/s delivered there", "CPU there (% core)", "loadgen CPU there"},
		best: func(b *Report) []string {
			cpu := "-"
			if b.Server != nil {
				cpu = formatValue(b.Server.CPUPercent)
			}
			return []string{formatValue(b.TickRate), formatValue(b.EventsPerSec), cpu, loadgenCost(b)}
		},
		failure: "first failure",
		failed: func(f *Report) string {
			return fmt.Sprintf("at %s ticks/s: %s", formatValue(f.TickRate), failure(f))
		},
		score: func(b *Report) float64 { return b.EventsPerSec },
	})
}

// failure says in a few words why a run did not keep up.
func failure(r *Report) string {
	var why []string
	if r.Held < r.Wanted {
		why = append(why, fmt.Sprintf("%d of %d held", r.Held, r.Wanted))
	}
	if r.Drops > 0 {
		why = append(why, fmt.Sprintf("%d drops", r.Drops))
	}
	if !r.IDs.Clean() {
		why = append(why, fmt.Sprintf("%d gaps, %d gap events", r.IDs.Gaps, r.IDs.ServerGaps))
	}
	why = append(why, fmt.Sprintf("%.1f%% delivered", 100*r.Delivered))
	return strings.Join(why, ", ")
}
