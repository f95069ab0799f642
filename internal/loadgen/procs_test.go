package loadgen

import (
	"os"
	"os/exec"
	"testing"
)

// TestProcSet: several processes' figures are summed, and each is kept.
func TestProcSet(t *testing.T) {
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()

	pids := []int{os.Getpid(), child.Process.Pid}
	ps, err := newProcSet(pids)
	if err != nil {
		t.Fatal(err)
	}
	ps.windowStart()
	sum, each := ps.report(4)
	if sum == nil || len(each) != 2 {
		t.Fatalf("report: %+v, %+v; want a sum and two processes", sum, each)
	}
	var rss int64
	var cpu float64
	for i, e := range each {
		if e.PID != pids[i] || e.RSSEndKiB <= 0 {
			t.Errorf("process %d: %+v, want pid %d with its RSS", i, e, pids[i])
		}
		rss += e.RSSEndKiB
		cpu += e.CPUPercent
	}
	if sum.RSSEndKiB != rss || sum.CPUPercent != cpu || sum.PID != 0 {
		t.Errorf("sum %+v, want RSS %d, CPU %v and no single pid", sum, rss, cpu)
	}
	if want := float64(sum.RSSEndKiB-sum.RSSBeforeKiB) / 4; sum.KiBPerStream != want {
		t.Errorf("KiB/stream %v, want %v", sum.KiBPerStream, want)
	}

	one, _ := newProcSet(pids[:1])
	one.windowStart()
	if s, e := one.report(1); s == nil || s.PID != pids[0] || e != nil {
		t.Errorf("one process: %+v, %+v; want its pid and no breakdown", s, e)
	}

	child.Process.Kill()
	child.Wait()
	if s, _ := ps.report(4); s != nil {
		t.Errorf("report after a process exited: %+v, want none", s)
	}
	if _, err := newProcSet([]int{1 << 30}); err == nil {
		t.Error("newProcSet of a pid that cannot exist: no error")
	}
}

func TestServerPIDs(t *testing.T) {
	c := Config{PID: 5, PIDs: []int{7, 5, 0, 9}}
	if got := c.serverPIDs(); len(got) != 3 || got[0] != 5 || got[1] != 7 || got[2] != 9 {
		t.Errorf("serverPIDs = %v, want [5 7 9]", got)
	}
	if got := (&Config{}).serverPIDs(); got != nil {
		t.Errorf("no pid: %v", got)
	}
}
