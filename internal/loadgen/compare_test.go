package loadgen

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestRatioPairs(t *testing.T) {
	got := ratioPairs([]string{"xhrsse", "raw", "r3labs"}, []string{"raw", "r3labs"})
	want := [][2]string{{"xhrsse", "raw"}, {"r3labs", "raw"}, {"xhrsse", "r3labs"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ratioPairs = %v, want %v", got, want)
	}
	if got := ratioPairs([]string{"xhrsse"}, []string{"raw"}); len(got) != 0 {
		t.Errorf("no reference present: %v", got)
	}
}

func report(label string, cpu, p99 float64, drops int) *Report {
	return &Report{
		Label: label, Held: 100, Wanted: 100, Drops: drops, EventsPerSec: 1000,
		Chat:   ChatReport{Latency: LatencySummary{Count: 10, P99: p99}},
		Server: &ProcReport{CPUPercent: cpu}, Loadgen: ProcReport{CPUPercent: cpu / 2},
	}
}

func TestWriteComparison(t *testing.T) {
	reports := []*Report{
		report("xhrsse", 10, 5, 0), report("raw", 40, 20, 0),
		report("xhrsse", 30, 7, 2), report("raw", 20, 10, 0),
		report("xhrsse", 20, 6, 0), report("raw", 30, 30, 0),
	}
	var buf bytes.Buffer
	if err := WriteComparison(&buf, reports, []string{"raw", "r3labs"}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	// Medians: xhrsse CPU 20, raw 30: 0.67×; p99 6 vs 20: 0.30×. Drops are
	// the worst run (2) and get no ratio.
	for _, want := range []string{"xhrsse/raw", "0.67×", "0.30×"} {
		if !strings.Contains(out, want) {
			t.Errorf("comparison lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		// The load generator's CPU per event: medians 10 % and 15 % of a
		// core over 1,000 events/s, no ratio.
		if strings.HasPrefix(strings.TrimSpace(line), "loadgen CPU per event") {
			if f := strings.Fields(line); len(f) != 7 || f[5] != "100.0" || f[6] != "150.0" {
				t.Errorf("loadgen per event row %q: want 100.0 and 150.0 µs and no ratio", line)
			}
		}
		if strings.HasPrefix(strings.TrimSpace(line), "drops") {
			if f := strings.Fields(line); len(f) != 3 || f[1] != "2" || f[2] != "0" {
				t.Errorf("drops row %q: want worst runs 2 and 0 and no ratio", line)
			}
		}
	}
}

func TestSaturation(t *testing.T) {
	run := func(label string, rate float64, ok bool) *Report {
		return &Report{Label: label, TickRate: rate, EventsPerSec: rate * 1000, KeptUp: ok, Held: 1000, Wanted: 1000, Delivered: 0.5}
	}
	res := Saturation([]*Report{
		run("raw", 40, false), run("raw", 10, true), run("raw", 20, true),
		// A lucky run above a failure does not count.
		run("r3labs", 10, true), run("r3labs", 20, false), run("r3labs", 40, true),
		run("never", 10, false),
	})
	got := map[string][2]float64{}
	for _, r := range res {
		var best, fail float64
		if r.Best != nil {
			best = r.Best.TickRate
		}
		if r.FirstFail != nil {
			fail = r.FirstFail.TickRate
		}
		got[r.Label] = [2]float64{best, fail}
	}
	want := map[string][2]float64{"raw": {20, 40}, "r3labs": {10, 20}, "never": {0, 10}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Saturation = %v, want %v", got, want)
	}
}

func TestReadReports(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.Encode(report("a", 1, 1, 0))
	enc.Encode(report("b", 2, 2, 0))
	p := filepath.Join(dir, "r.json")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	rs, err := ReadReports(p)
	if err != nil || len(rs) != 2 || rs[1].Label != "b" || rs[1].Server.CPUPercent != 2 {
		t.Fatalf("ReadReports = %v, %v", rs, err)
	}
}
