package loadgen

import (
	"bytes"
	"strings"
	"testing"
)

func capRun(label string, n int, delivered, p99 float64) *Report {
	return &Report{
		Label: label, Wanted: n, Held: n, Delivered: delivered, ChatRate: 1,
		Chat:   ChatReport{Sent: 10, Expected: int64(10 * n), Deliveries: int64(10 * n), Latency: LatencySummary{Count: 10, P99: p99}},
		Server: &ProcReport{CPUPercent: 50}, Loadgen: ProcReport{CPUPercent: 40}, EventsPerSec: 20000,
	}
}

func TestHeld(t *testing.T) {
	if ok, why := Held(capRun("x", 1000, 1, 150)); !ok {
		t.Errorf("a clean run is not held: %s", why)
	}
	late := capRun("x", 1000, 1, 250)
	if ok, why := Held(late); ok || !strings.Contains(why, "p99 250") {
		t.Errorf("p99 250 ms: %v, %q", ok, why)
	}
	if ok, why := Held(capRun("x", 1000, 0.98, 50)); !ok {
		t.Errorf("98 %% of the nominal rate (window quantization) not held: %s", why)
	}
	slow := capRun("x", 1000, 0.9, 50)
	if ok, why := Held(slow); ok || !strings.Contains(why, "90.00% of the nominal") {
		t.Errorf("90 %% of the nominal rate: %v, %q", ok, why)
	}
	holes := capRun("x", 1000, 1, 50)
	holes.Ticks, holes.IDs.Missing = 99_880, 120 // 0.12 % lost
	if ok, why := Held(holes); ok || !strings.Contains(why, "0.12% of ticks lost") {
		t.Errorf("0.12 %% lost: %v, %q", ok, why)
	}
	lost := capRun("x", 1000, 1, 50)
	lost.Chat.Deliveries -= 11 // 0.11 % of 10,000 missing
	if ok, why := Held(lost); ok || !strings.Contains(why, "of chats") {
		t.Errorf("chats missing: %v, %q", ok, why)
	}
	dropped := capRun("x", 1000, 1, 50)
	dropped.Held = 999
	if ok, _ := Held(dropped); ok {
		t.Error("a stream not held: held")
	}
}

func TestCapacity(t *testing.T) {
	reports := []*Report{
		capRun("raw", 2000, 1, 100), capRun("raw", 1000, 1, 50), capRun("raw", 3000, 1, 300),
		capRun("xhrsse", 1000, 1, 50), capRun("xhrsse", 2000, 1, 60), capRun("xhrsse", 3000, 1, 90),
		// a lucky run above a failure does not count
		capRun("r3labs", 1000, 0.5, 50), capRun("r3labs", 2000, 1, 50),
	}
	res := Capacity(reports)
	got := map[string]int{}
	for _, r := range res {
		if r.Best != nil {
			got[r.Label] = r.Best.Wanted
		}
	}
	if got["raw"] != 2000 || got["xhrsse"] != 3000 || got["r3labs"] != 0 {
		t.Errorf("capacity %v; want raw 2000, xhrsse 3000, r3labs none", got)
	}
	var buf bytes.Buffer
	if err := WriteCapacity(&buf, reports, []string{"raw", "r3labs"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1.50×", "N=3000: chat p99 300 ms", "N=1000: 50.00% of the nominal tick rate", "loadgen CPU there", "40.00% (20.00 µs/event)"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

// With several windows a step, a step is held when most of its windows
// are, and the table shows the window with the middle chat p99 of those.
func TestCapacityByMostWindows(t *testing.T) {
	reports := []*Report{
		// 1,000: all held; 2,000: two of three; 3,000: one of three.
		capRun("x", 1000, 1, 50), capRun("x", 1000, 1, 70), capRun("x", 1000, 1, 60),
		capRun("x", 2000, 1, 190), capRun("x", 2000, 1, 250), capRun("x", 2000, 1, 120),
		capRun("x", 3000, 1, 150), capRun("x", 3000, 1, 260), capRun("x", 3000, 1, 300),
		// A server held by one window of three at its first step: none.
		capRun("y", 1000, 1, 100), capRun("y", 1000, 1, 230), capRun("y", 1000, 1, 240),
	}
	got := map[string]*SweepResult{}
	for _, r := range Capacity(reports) {
		got[r.Label] = &r
	}
	x := got["x"]
	if x.Best == nil || x.Best.Wanted != 2000 || x.Best.Chat.Latency.P99 != 190 {
		t.Errorf("x: best %+v; want N=2000, its middle held window (p99 190)", x.Best)
	}
	if x.FirstFail == nil || x.FirstFail.Wanted != 3000 || x.FirstFail.Chat.Latency.P99 != 300 {
		t.Errorf("x: first failure %+v; want N=3000, its middle failed window (p99 300)", x.FirstFail)
	}
	if y := got["y"]; y.Best != nil || y.FirstFail == nil || y.FirstFail.Wanted != 1000 {
		t.Errorf("y: %+v; want no step held, N=1000 failed", y)
	}
	if ok, whys := HeldByMost(reports[3:6]); !ok || len(whys) != 1 {
		t.Errorf("two windows of three held: %v %q", ok, whys)
	}
	if ok, _ := HeldByMost(reports[6:9]); ok {
		t.Error("one window of three held: held")
	}
	if ok, _ := HeldByMost(reports[:1]); !ok {
		t.Error("one window, held: not held")
	}
}
