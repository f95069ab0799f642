package loadgen

import "slices"

// procSet samples the server's processes: one for a single server; for a
// cluster every node and the broker's host, whose costs add up to what the
// cluster spent.
type procSet struct {
	pids                []int
	before, start, last []ProcSample
}

// newProcSet takes the "before" sample of every process; it fails if one
// cannot be read (a wrong pid is a mistake worth stopping for).
func newProcSet(pids []int) (*procSet, error) {
	ps := &procSet{pids: pids}
	var err error
	ps.before, err = ps.read()
	return ps, err
}

func (ps *procSet) read() ([]ProcSample, error) {
	out := make([]ProcSample, len(ps.pids))
	for i, pid := range ps.pids {
		s, err := ReadProc(pid)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// windowStart samples at the start of the measurement window.
func (ps *procSet) windowStart() { ps.start, _ = ps.read() }

// report samples at the end of the window and returns the sum over the
// processes and, for more than one, each process's own figures. It returns
// nil if a process could not be read at the start or now (it exited).
func (ps *procSet) report(held int) (*ProcReport, []ProcReport) {
	end, err := ps.read()
	if err != nil || ps.start == nil {
		return nil, nil
	}
	each := make([]ProcReport, len(ps.pids))
	sum := &ProcReport{}
	for i, pid := range ps.pids {
		each[i] = ProcReport{
			PID: pid, CPUPercent: CPUPercent(ps.start[i], end[i]),
			RSSBeforeKiB: ps.before[i].RSSKiB, RSSStartKiB: ps.start[i].RSSKiB, RSSEndKiB: end[i].RSSKiB,
		}
		each[i].WritesPerSec, each[i].WriteBytesPerSec = WriteRates(ps.start[i], end[i])
		sum.CPUPercent += each[i].CPUPercent
		sum.WritesPerSec += each[i].WritesPerSec
		sum.WriteBytesPerSec += each[i].WriteBytesPerSec
		sum.RSSBeforeKiB += each[i].RSSBeforeKiB
		sum.RSSStartKiB += each[i].RSSStartKiB
		sum.RSSEndKiB += each[i].RSSEndKiB
	}
	if held > 0 {
		sum.KiBPerStream = float64(sum.RSSEndKiB-sum.RSSBeforeKiB) / float64(held)
	}
	if len(ps.pids) == 1 {
		sum.PID = ps.pids[0]
		return sum, nil
	}
	return sum, each
}

// serverPIDs is PID followed by PIDs, without zeros or repeats.
func (c *Config) serverPIDs() []int {
	var out []int
	for _, pid := range append([]int{c.PID}, c.PIDs...) {
		if pid > 0 && !slices.Contains(out, pid) {
			out = append(out, pid)
		}
	}
	return out
}
