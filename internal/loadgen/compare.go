package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

// ReadReports reads reports written with -json, one JSON document per file
// (or several concatenated).
func ReadReports(paths ...string) ([]*Report, error) {
	var out []*Report
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		dec := json.NewDecoder(f)
		for {
			var r Report
			if err := dec.Decode(&r); err == io.EOF {
				break
			} else if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			out = append(out, &r)
		}
		f.Close()
	}
	return out, nil
}

// A figure is one row of the comparison: how to read it from a report and
// how to combine repeats.
type figure struct {
	name    string
	get     func(*Report) (float64, bool)
	worst   bool // combine repeats by their worst (max) instead of the median
	count   bool // a whole number
	noRatio bool // not the servers' doing: no ratio between them
	unit    string
}

var figures = []figure{
	{name: "streams held", count: true, get: func(r *Report) (float64, bool) { return float64(r.Held), true }},
	{name: "connect errors", count: true, worst: true, get: func(r *Report) (float64, bool) { return float64(r.ConnectErrors), true }},
	{name: "drops", count: true, worst: true, get: func(r *Report) (float64, bool) { return float64(r.Drops), true }},
	{name: "gaps+dups+reorders", count: true, worst: true, get: func(r *Report) (float64, bool) {
		return float64(r.IDs.Gaps + r.IDs.Duplicates + r.IDs.OutOfOrder + r.IDs.ServerGaps), true
	}},
	{name: "events/s", get: func(r *Report) (float64, bool) { return r.EventsPerSec, true }},
	{name: "MB/s", get: func(r *Report) (float64, bool) { return r.MBPerSec, true }},
	{name: "ticks delivered", unit: "%", get: func(r *Report) (float64, bool) { return 100 * r.Delivered, r.ExpectedTicks > 0 }},
	{name: "chat delivered", unit: "%", get: func(r *Report) (float64, bool) {
		return 100 * float64(r.Chat.Deliveries) / float64(r.Chat.Expected), r.Chat.Expected > 0
	}},
	{name: "chat p50", unit: "ms", get: func(r *Report) (float64, bool) { return r.Chat.Latency.P50, r.Chat.Latency.Count > 0 }},
	{name: "chat p99", unit: "ms", get: func(r *Report) (float64, bool) { return r.Chat.Latency.P99, r.Chat.Latency.Count > 0 }},
	{name: "chat max", unit: "ms", get: func(r *Report) (float64, bool) { return r.Chat.Latency.Max, r.Chat.Latency.Count > 0 }},
	{name: "server CPU", unit: "% core", get: func(r *Report) (float64, bool) {
		if r.Server == nil {
			return 0, false
		}
		return r.Server.CPUPercent, true
	}},
	{name: "server CPU per event", unit: "µs", get: func(r *Report) (float64, bool) {
		if r.Server == nil || r.EventsPerSec == 0 {
			return 0, false
		}
		return r.Server.CPUPercent / 100 / r.EventsPerSec * 1e6, true
	}},
	{name: "server write syscalls/s", get: func(r *Report) (float64, bool) {
		if r.Server == nil || r.Server.WritesPerSec == 0 {
			return 0, false
		}
		return r.Server.WritesPerSec, true
	}},
	{name: "writes/s per stream", get: func(r *Report) (float64, bool) {
		if r.Server == nil || r.Server.WritesPerSec == 0 || r.Held == 0 {
			return 0, false
		}
		return r.Server.WritesPerSec / float64(r.Held), true
	}},
	{name: "bytes/s per stream", get: func(r *Report) (float64, bool) {
		if r.Server == nil || r.Server.WriteBytesPerSec == 0 || r.Held == 0 {
			return 0, false
		}
		return r.Server.WriteBytesPerSec / float64(r.Held), true
	}},
	{name: "server CPU per write", unit: "µs", get: func(r *Report) (float64, bool) {
		if r.Server == nil || r.Server.WritesPerSec == 0 {
			return 0, false
		}
		return r.Server.CPUPercent / 100 / r.Server.WritesPerSec * 1e6, true
	}},
	{name: "server RSS", unit: "MiB", get: func(r *Report) (float64, bool) {
		if r.Server == nil {
			return 0, false
		}
		return mib(r.Server.RSSEndKiB), true
	}},
	{name: "server KiB/stream", get: func(r *Report) (float64, bool) {
		if r.Server == nil || r.Held == 0 {
			return 0, false
		}
		return r.Server.KiBPerStream, true
	}},
	{name: "RSS growth in window", unit: "MiB", get: func(r *Report) (float64, bool) {
		if r.Server == nil {
			return 0, false
		}
		return mib(r.Server.RSSEndKiB - r.Server.RSSStartKiB), true
	}},
	{name: "bulk", unit: "MB/s", get: func(r *Report) (float64, bool) {
		if r.Bulk == nil || r.Bulk.Transfers == 0 {
			return 0, false
		}
		return r.Bulk.MBPerSec, true
	}},
	{name: "loadgen CPU", unit: "% core", noRatio: true, get: func(r *Report) (float64, bool) { return r.Loadgen.CPUPercent, true }},
	{name: "loadgen CPU per event", unit: "µs", noRatio: true, get: loadgenPerEvent},
	{name: "other processes' CPU", unit: "% core", noRatio: true, get: func(r *Report) (float64, bool) {
		if r.Server == nil || r.MachineCPU == 0 {
			return 0, false
		}
		return r.MachineCPU - r.Server.CPUPercent - r.Loadgen.CPUPercent, true
	}},
	{name: "load average", noRatio: true, get: func(r *Report) (float64, bool) { return (r.LoadAvg[0] + r.LoadAvg[1]) / 2, r.LoadAvg[0] >= 0 }},
}

// groups splits reports by label, keeping the labels' first-seen order.
func groups(reports []*Report) (labels []string, by map[string][]*Report) {
	by = map[string][]*Report{}
	for _, r := range reports {
		if _, ok := by[r.Label]; !ok {
			labels = append(labels, r.Label)
		}
		by[r.Label] = append(by[r.Label], r)
	}
	return labels, by
}

// combine reads figure f from every report of a group: the median, or the
// worst for counts of failures. ok is false when no report has the figure.
func combine(f figure, rs []*Report) (float64, bool) {
	var vs []float64
	for _, r := range rs {
		if v, ok := f.get(r); ok && !math.IsNaN(v) {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return 0, false
	}
	if f.worst {
		return slices.Max(vs), true
	}
	return median(vs), true
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ratioPairs lists the ratio columns: every label against each reference
// label present (refs in order), e.g. xhrsse/raw, r3labs/raw, xhrsse/r3labs.
func ratioPairs(labels, refs []string) [][2]string {
	var pairs [][2]string
	for _, ref := range refs {
		if !slices.Contains(labels, ref) {
			continue
		}
		for _, l := range labels {
			if l == ref || (slices.Contains(refs, l) && slices.Index(refs, l) < slices.Index(refs, ref)) {
				continue
			}
			pairs = append(pairs, [2]string{l, ref})
		}
	}
	return pairs
}

// WriteComparison prints one table: a row per figure, a column per server
// (the median of its runs; failures: the worst run) and a column per ratio
// to each reference server.
func WriteComparison(w io.Writer, reports []*Report, refs []string) error {
	labels, by := groups(reports)
	pairs := ratioPairs(labels, refs)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	head := []string{"figure"}
	runs := []string{"runs"}
	for _, l := range labels {
		head = append(head, l)
		runs = append(runs, fmt.Sprint(len(by[l])))
	}
	for _, p := range pairs {
		head = append(head, p[0]+"/"+p[1])
		runs = append(runs, "")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	fmt.Fprintln(tw, strings.Join(runs, "\t")+"\t")
	for _, f := range figures {
		vals := map[string]float64{}
		row := []string{f.name}
		if f.unit != "" {
			row[0] += " (" + f.unit + ")"
		}
		found := false
		for _, l := range labels {
			v, ok := combine(f, by[l])
			if !ok {
				row = append(row, "-")
				continue
			}
			found = true
			vals[l] = v
			if f.count && v == math.Trunc(v) {
				row = append(row, fmt.Sprintf("%.0f", v))
			} else {
				row = append(row, formatValue(v))
			}
		}
		if !found {
			continue
		}
		for _, p := range pairs {
			a, okA := vals[p[0]]
			b, okB := vals[p[1]]
			if !okA || !okB || b == 0 || f.worst || f.noRatio {
				row = append(row, "")
				continue
			}
			row = append(row, fmt.Sprintf("%.2f×", a/b))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	return tw.Flush()
}

func formatValue(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
