package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/xhrsse/xhrsse/internal/loadgen"
	"github.com/xhrsse/xhrsse/internal/testserver"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestSeveralURLsAndPIDs: -url and -pid take comma-separated lists; the
// JSON report then has one entry per node and per process.
func TestSeveralURLsAndPIDs(t *testing.T) {
	a, b := testserver.Start(t), testserver.Start(t)
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()

	var out, errs bytes.Buffer
	err := run([]string{
		"-url", a.URL + "," + b.URL, "-n", "4", "-duration", "1s", "-chat-rate", "0", "-json",
		"-pid", strconv.Itoa(os.Getpid()) + ", " + strconv.Itoa(child.Process.Pid),
	}, &out, &errs)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, errs.String())
	}
	var rep loadgen.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report %s: %v", out.String(), err)
	}
	if len(rep.Nodes) != 2 || rep.Nodes[0].Opened != 2 || rep.Nodes[1].Opened != 2 {
		t.Errorf("nodes %+v, want 2 streams on each of 2", rep.Nodes)
	}
	if len(rep.Servers) != 2 || rep.Server == nil || rep.Server.RSSEndKiB != rep.Servers[0].RSSEndKiB+rep.Servers[1].RSSEndKiB {
		t.Errorf("server %+v, servers %+v: want both processes and their sum", rep.Server, rep.Servers)
	}

	// -summary sums the report up in a line, the load generator's CPU in it.
	file := filepath.Join(t.TempDir(), "report.json")
	if err := os.WriteFile(file, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var line bytes.Buffer
	if err := run([]string{"-summary", file}, &line, &errs); err != nil {
		t.Fatalf("-summary: %v", err)
	}
	if want := "xhrsse N=4: 4 held"; !strings.HasPrefix(line.String(), want) || !strings.Contains(line.String(), "loadgen CPU") ||
		strings.Count(line.String(), "\n") != 1 {
		t.Errorf("-summary printed %q, want one line starting %q with the loadgen CPU", line.String(), want)
	}
}

func TestBadPIDList(t *testing.T) {
	for _, pids := range []string{"x", "12,", "-3"} {
		var out, errs bytes.Buffer
		err := run([]string{"-pid", pids}, &out, &errs)
		if err == nil || !strings.Contains(err.Error(), "-pid") {
			t.Errorf("-pid %q: %v, want a refusal", pids, err)
		}
	}
}
