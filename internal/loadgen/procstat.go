package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports (the kernel fixes it for
// user space whatever CONFIG_HZ is), and reading it would need cgo sysconf.
const clockTicks = 100

// ProcSample is one reading of a process's CPU time, resident memory and
// writes.
type ProcSample struct {
	At     time.Time
	CPU    time.Duration // user + system time so far
	RSSKiB int64         // VmRSS
	// From /proc/PID/io, when readable (IO): write syscalls so far (syscw)
	// and the bytes they wrote (wchar), sockets included.
	IO     bool
	Writes int64
	WBytes int64
}

// ReadProc samples process pid ("self" for pid 0) from /proc.
func ReadProc(pid int) (ProcSample, error) {
	dir := "/proc/self"
	if pid > 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	now := time.Now()
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return ProcSample{}, fmt.Errorf("loadgen: read cpu: %w", err)
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return ProcSample{}, err
	}
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return ProcSample{}, fmt.Errorf("loadgen: read rss: %w", err)
	}
	rss, err := parseStatusRSS(status)
	if err != nil {
		return ProcSample{}, err
	}
	ps := ProcSample{At: now, CPU: cpu, RSSKiB: rss}
	// /proc/PID/io needs ptrace rights over the process; without them the
	// write figures are left out, the rest stands.
	if io, err := os.ReadFile(dir + "/io"); err == nil {
		ps.Writes, ps.WBytes, ps.IO = parseIO(io)
	}
	return ps, nil
}

// parseIO reads syscw and wchar of /proc/PID/io; ok is false if either is
// missing.
func parseIO(io []byte) (syscw, wchar int64, ok bool) {
	var have int
	for line := range strings.Lines(string(io)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ": ")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "syscw":
			syscw = n
			have |= 1
		case "wchar":
			wchar = n
			have |= 2
		}
	}
	return syscw, wchar, have == 3
}

// parseStatCPU reads utime and stime (fields 14 and 15) of /proc/PID/stat.
// Fields are counted after the command name, which is in parentheses and
// may itself contain spaces and parentheses: the last ')' ends it.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("loadgen: /proc stat: no command name")
	}
	// After ") " come field 3 (state), 4, …: utime is field 14, index 11.
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("loadgen: /proc stat: %d fields", len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("loadgen: /proc stat: bad utime %q or stime %q", f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// parseStatusRSS reads the VmRSS line of /proc/PID/status, in KiB.
func parseStatusRSS(status []byte) (int64, error) {
	for line := range strings.Lines(string(status)) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("loadgen: /proc status: bad VmRSS line %q", line)
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("loadgen: /proc status: no VmRSS")
}

// CPUPercent is the CPU used between two samples as a percentage of one
// core: 150 means one and a half cores busy on average.
func CPUPercent(a, b ProcSample) float64 {
	wall := b.At.Sub(a.At)
	if wall <= 0 {
		return 0
	}
	return 100 * float64(b.CPU-a.CPU) / float64(wall)
}

// WriteRates is the write syscalls and bytes written a second between two
// samples; zero when either sample lacks them.
func WriteRates(a, b ProcSample) (writes, bytes float64) {
	wall := b.At.Sub(a.At).Seconds()
	if !a.IO || !b.IO || wall <= 0 {
		return 0, 0
	}
	return float64(b.Writes-a.Writes) / wall, float64(b.WBytes-a.WBytes) / wall
}

// LoadAvg reads the one-minute load average, or -1 if it cannot.
func LoadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// MachineSample is one reading of the whole machine's CPU time (all cores).
type MachineSample struct {
	At         time.Time
	Busy, Idle time.Duration // idle includes iowait
}

// ReadMachine samples the first line of /proc/stat.
func ReadMachine() (MachineSample, error) {
	now := time.Now()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineSample{}, fmt.Errorf("loadgen: read machine cpu: %w", err)
	}
	return parseMachine(b, now)
}

func parseMachine(stat []byte, at time.Time) (MachineSample, error) {
	line, _, _ := strings.Cut(string(stat), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return MachineSample{}, fmt.Errorf("loadgen: /proc/stat: bad first line %q", line)
	}
	s := MachineSample{At: at}
	// user nice system idle iowait irq softirq steal (guest time is
	// already counted in user).
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return MachineSample{}, fmt.Errorf("loadgen: /proc/stat: %q", v)
		}
		d := time.Duration(n) * time.Second / clockTicks
		if i == 3 || i == 4 {
			s.Idle += d
		} else {
			s.Busy += d
		}
	}
	return s, nil
}

// MachineBusy is the CPU the whole machine used between two samples, as a
// percentage of one core (200 is two cores fully busy).
func MachineBusy(a, b MachineSample) float64 {
	wall := b.At.Sub(a.At)
	if wall <= 0 {
		return 0
	}
	return 100 * float64(b.Busy-a.Busy) / float64(wall)
}
