package main

import (
	"bufio"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var (
	proxyLine = regexp.MustCompile(`^  proxy  (http://127\.0\.0\.1:\d+)/`)
	nodeLine  = regexp.MustCompile(`^  node\d+ +http://127\.0\.0\.1:\d+/  pid (\d+)$`)
)

// TestBinary runs the launcher as `make cluster` does, as its own process:
// it prints the proxy and the nodes, serves through the proxy, and on Ctrl-C
// (SIGINT to its whole process group, as a terminal sends it) stops its
// nodes, each with one SIGTERM, and exits 0, leaving no child behind.
func TestBinary(t *testing.T) {
	launcher := goBuild(t, "github.com/xhrsse/xhrsse/cmd/cluster", "xhrsse-cluster")
	cmd := exec.Command(launcher, "-server", server(t), "-nodes", "2",
		"-addr", "127.0.0.1:0", "-nats-addr", "127.0.0.1:0", "-store", t.TempDir())
	cmd.Stderr = t.Output()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a terminal's foreground group
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})

	type printed struct {
		proxy string
		pids  []int
		text  string
	}
	got := make(chan printed, 1)
	go func() {
		var p printed
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			p.text += line + "\n"
			if m := proxyLine.FindStringSubmatch(line); m != nil {
				p.proxy = m[1]
			}
			if m := nodeLine.FindStringSubmatch(line); m != nil {
				pid, _ := strconv.Atoi(m[1])
				p.pids = append(p.pids, pid)
			}
			if strings.HasPrefix(line, "Ctrl-C") {
				got <- p
				p = printed{}
			}
		}
		got <- p // EOF without the last line: what was printed so far
		io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()

	var p printed
	select {
	case p = <-got:
	case <-time.After(2 * wait):
		t.Fatal("the launcher printed no URLs")
	}
	if p.proxy == "" || len(p.pids) != 2 || !strings.Contains(p.text, "nats://127.0.0.1:") ||
		!strings.Contains(p.text, "xhrsse-tui -server "+p.proxy) {
		t.Fatalf("printed:\n%s\nwant the proxy, two nodes with pids, the broker and the TUI command", p.text)
	}
	// A terminal's Ctrl-C goes to its foreground process group: the nodes
	// must not be in it, or they get SIGINT and then the launcher's SIGTERM.
	for _, pid := range p.pids {
		if pgid, err := syscall.Getpgid(pid); err != nil || pgid == cmd.Process.Pid {
			t.Errorf("node pid %d: process group %d (%v); want one of its own, not the launcher's %d", pid, pgid, err, cmd.Process.Pid)
		}
	}
	cl := newClient(t)
	nodes := map[string]bool{}
	for range 4 {
		status, node, _ := cl.get(p.proxy + "/healthz")
		if status != http.StatusOK {
			t.Fatalf("proxy /healthz: %d", status)
		}
		nodes[node] = true
	}
	if !nodes["node1"] || !nodes["node2"] {
		t.Errorf("4 requests through the proxy reached %v: want node1 and node2", nodes)
	}
	cl.hc.CloseIdleConnections()

	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Errorf("launcher exit after Ctrl-C: %v, want status 0 (every node stopped cleanly)", err)
		}
	case <-time.After(2 * wait):
		t.Fatal("the launcher still runs after Ctrl-C")
	}
	for _, pid := range p.pids {
		if !gone(pid) {
			t.Errorf("node pid %d outlived the launcher", pid)
		}
	}
	if !refused(p.proxy) {
		t.Errorf("proxy %s still accepts connections", p.proxy)
	}
}
