package loadgen

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// A sweep is a series of runs of each server at rising steps: N for
// capacity, the tick rate for saturation, one run or several at each step.
// A step passes when most of its runs pass: one 10-s window is at the mercy
// of whatever else the machine did then. Its outcome for a server is the
// highest step passed with every step below it passed too (a lucky step
// above a failure does not count) and the first step that failed.

// SweepResult is one server's outcome of a sweep.
type SweepResult struct {
	Label string
	// Best is the middle run (by the sweep's rank) of those that passed at
	// the highest step passed, every lower step passed too; nil if none.
	// FirstFail is the middle run of those that failed at the lowest step
	// not passed, nil if none failed.
	Best, FirstFail *Report
}

// sweep climbs each server's runs by step; rank orders a step's runs to
// find its middle one.
func sweep(reports []*Report, step, rank func(*Report) float64, passed func(*Report) bool) []SweepResult {
	labels, by := groups(reports)
	var out []SweepResult
	for _, l := range labels {
		res := SweepResult{Label: l}
		res.Best, res.FirstFail = climb(by[l], step, rank, passed)
		out = append(out, res)
	}
	return out
}

// climb goes up a sweep's steps and returns the last step that passed with
// every one below it passing too, and the first that failed, each as the
// middle run of its majority; nil where there is none.
func climb(runs []*Report, step, rank func(*Report) float64, passed func(*Report) bool) (best, firstFail *Report) {
	rs := slices.Clone(runs)
	slices.SortStableFunc(rs, func(a, b *Report) int { return cmp.Compare(step(a), step(b)) })
	for len(rs) > 0 {
		n := 1
		for n < len(rs) && step(rs[n]) == step(rs[0]) {
			n++
		}
		var ok, failed []*Report
		for _, r := range rs[:n] {
			if passed(r) {
				ok = append(ok, r)
			} else {
				failed = append(failed, r)
			}
		}
		if 2*len(ok) <= n {
			return best, middle(failed, rank)
		}
		best = middle(ok, rank)
		rs = rs[n:]
	}
	return best, nil
}

// middle is the run in the middle of rs by rank.
func middle(rs []*Report, rank func(*Report) float64) *Report {
	rs = slices.Clone(rs)
	slices.SortStableFunc(rs, func(a, b *Report) int { return cmp.Compare(rank(a), rank(b)) })
	return rs[len(rs)/2]
}

// A sweepTable says how to print a sweep's outcome: a row a server, with
// columns read from its best run, why its first failure failed, and the
// ratio of its best run's score to each reference server's.
type sweepTable struct {
	columns []string               // headings of the best run's columns
	best    func(*Report) []string // those columns of the best run
	failure string                 // heading of the first failure's column
	failed  func(*Report) string   // that column
	score   func(*Report) float64  // what the ratios divide
}

func writeSweep(w io.Writer, res []SweepResult, refs []string, t sweepTable) error {
	score := map[string]float64{}
	for _, r := range res {
		if r.Best != nil {
			score[r.Label] = t.score(r.Best)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := append(append([]string{"server"}, t.columns...), t.failure)
	for _, ref := range refs {
		head = append(head, "vs "+ref)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range res {
		row := []string{r.Label}
		if r.Best != nil {
			row = append(row, t.best(r.Best)...)
		} else {
			row = append(row, "none")
			for range len(t.columns) - 1 {
				row = append(row, "-")
			}
		}
		fail := "-"
		if r.FirstFail != nil {
			fail = t.failed(r.FirstFail)
		}
		row = append(row, fail)
		for _, ref := range refs {
			b, ok := score[ref]
			if !ok || b == 0 || r.Best == nil {
				row = append(row, "")
				continue
			}
			row = append(row, fmt.Sprintf("%.2f×", t.score(r.Best)/b))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// loadgenCost is the load generator's CPU in a sweep table's column: % of a
// core and µs per event received, or "-" if not measured.
func loadgenCost(r *Report) string {
	us, ok := loadgenPerEvent(r)
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%s%% (%s µs/event)", formatValue(r.Loadgen.CPUPercent), formatValue(us))
}

// loadgenPerEvent is the load generator's CPU per event received, in µs.
func loadgenPerEvent(r *Report) (float64, bool) {
	if r.EventsPerSec == 0 || r.Loadgen.CPUPercent == 0 {
		return 0, false
	}
	return r.Loadgen.CPUPercent / 100 / r.EventsPerSec * 1e6, true
}
