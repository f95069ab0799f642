package loadgen

import (
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// The command name may hold spaces and parentheses; utime 250 and stime
	// 150 ticks are 4 s.
	stat := []byte("1234 (we(ird) name)) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 150 0 0 20 0 3 0 100 1000 200\n")
	got, err := parseStatCPU(stat)
	if err != nil || got != 4*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 4s", got, err)
	}
	if _, err := parseStatCPU([]byte("1234 (x) S 1 2")); err == nil {
		t.Error("short stat: no error")
	}
}

func TestParseStatusRSS(t *testing.T) {
	status := []byte("Name:\tserver\nVmPeak:\t  2000 kB\nVmRSS:\t   12345 kB\nThreads:\t5\n")
	if got, err := parseStatusRSS(status); err != nil || got != 12345 {
		t.Errorf("parseStatusRSS = %d, %v; want 12345", got, err)
	}
	if _, err := parseStatusRSS([]byte("Name:\tx\n")); err == nil {
		t.Error("no VmRSS: no error")
	}
}

func TestReadProcSelf(t *testing.T) {
	a, err := ReadProc(0)
	if err != nil {
		t.Fatal(err)
	}
	// Burn some CPU so that the second sample must be later.
	deadline := time.Now().Add(50 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	b, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if a.RSSKiB <= 0 || b.CPU < a.CPU || !b.At.After(a.At) {
		t.Errorf("samples %+v then %+v: want RSS > 0 and time moving forward", a, b)
	}
	if p := CPUPercent(a, b); p < 0 || p > 100*float64(64) {
		t.Errorf("CPUPercent = %v", p)
	}
	if _, err := ReadProc(1 << 30); err == nil {
		t.Error("ReadProc of a pid that cannot exist: no error")
	}
}

func TestCPUPercent(t *testing.T) {
	t0 := time.Now()
	a := ProcSample{At: t0, CPU: time.Second}
	b := ProcSample{At: t0.Add(2 * time.Second), CPU: 4 * time.Second}
	if got := CPUPercent(a, b); got != 150 {
		t.Errorf("CPUPercent = %v, want 150 (3 s of CPU in 2 s)", got)
	}
	if got := CPUPercent(b, b); got != 0 {
		t.Errorf("CPUPercent over no time = %v, want 0", got)
	}
}

func TestParseMachine(t *testing.T) {
	t0 := time.Now()
	a, err := parseMachine([]byte("cpu  100 0 50 1000 20 5 5 0 0 0\ncpu0 1 2 3 4\n"), t0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseMachine([]byte("cpu  250 0 100 1100 40 10 10 0 0 0\n"), t0.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// Busy went from 160 to 370 ticks: 2.1 s of CPU in 2 s.
	if got := MachineBusy(a, b); got < 104.9 || got > 105.1 {
		t.Errorf("MachineBusy = %v, want 105", got)
	}
	if _, err := parseMachine([]byte("intr 1 2\n"), t0); err == nil {
		t.Error("bad /proc/stat: no error")
	}
	if _, err := ReadMachine(); err != nil {
		t.Error(err)
	}
}

func TestParseIO(t *testing.T) {
	io := []byte("rchar: 100\nwchar: 2048\nsyscr: 3\nsyscw: 17\nread_bytes: 0\nwrite_bytes: 0\ncancelled_write_bytes: 0\n")
	if w, b, ok := parseIO(io); !ok || w != 17 || b != 2048 {
		t.Errorf("parseIO = %d, %d, %v; want 17, 2048, true", w, b, ok)
	}
	if _, _, ok := parseIO([]byte("rchar: 1\n")); ok {
		t.Error("no syscw: ok")
	}
}

func TestWriteRatesSelf(t *testing.T) {
	a, err := ReadProc(0)
	if err != nil {
		t.Fatal(err)
	}
	if !a.IO {
		t.Fatal("/proc/self/io not read")
	}
	f, err := os.CreateTemp(t.TempDir(), "w")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for range 10 {
		if _, err := f.Write(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(10 * time.Millisecond)
	b, err := ReadProc(0)
	if err != nil {
		t.Fatal(err)
	}
	if b.Writes-a.Writes < 10 || b.WBytes-a.WBytes < 1000 {
		t.Errorf("after 10 writes of 100 bytes: %d writes, %d bytes", b.Writes-a.Writes, b.WBytes-a.WBytes)
	}
	if w, by := WriteRates(a, b); w <= 0 || by <= 0 {
		t.Errorf("WriteRates = %v, %v", w, by)
	}
}
