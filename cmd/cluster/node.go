package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"time"
)

// listening matches the line a server logs once it serves (slog text
// format): `msg=listening url=http://127.0.0.1:PORT/`.
var listening = regexp.MustCompile(`msg=listening url=(https?://\S+?)/?(?:\s|$)`)

// A node is one child process running the real server binary.
type node struct {
	name string
	url  string // base URL without the trailing slash, once it listens
	cmd  *exec.Cmd

	exited chan struct{} // closed once the process has exited and been waited for
	err    error         // Wait's answer; read after exited is closed
}

// startNode runs bin with args, passes every line it prints to out prefixed
// with its name, and returns once the child logged where it listens. It
// fails if the child exits first or ctx ends first; the child is then
// stopped and waited for.
func startNode(ctx context.Context, bin, name string, args []string, out *lineWriter) (*node, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = w, w
	// Each node in a process group of its own: Ctrl-C in the terminal
	// reaches only the launcher, which then sends each node one SIGTERM (a
	// second signal during its shutdown would kill it mid-handover). And
	// should the launcher die without stopping its children (SIGKILL, a
	// crash), the kernel sends them SIGTERM, so no node outlives it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("%s: start %s: %w", name, bin, err)
	}
	w.Close() // the child holds its own copy; EOF on r once it exits
	n := &node{name: name, cmd: cmd, exited: make(chan struct{})}
	found := make(chan string, 1)
	go n.read(r, out, found)

	select {
	case u := <-found:
		n.url = u
		return n, nil
	case <-n.exited:
		return nil, fmt.Errorf("%s: exited before it listened: %w", name, n.exitErr())
	case <-ctx.Done():
		n.stop(5 * time.Second)
		// The line is logged at info: a -log-level above that hides it.
		return nil, fmt.Errorf("%s: no listening line (logged at -log-level info): %w", name, context.Cause(ctx))
	}
}

// read copies the child's output to out line by line and reports the first
// listening URL on found. When the output ends (the child exited) it waits
// for the process and closes exited. Runs in its own goroutine.
func (n *node) read(r io.ReadCloser, out *lineWriter, found chan<- string) {
	defer close(n.exited)
	defer func() { n.err = n.cmd.Wait() }()
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	reported := false
	for sc.Scan() {
		line := sc.Text()
		out.line(n.name, line)
		if !reported {
			if m := listening.FindStringSubmatch(line); m != nil {
				found <- m[1]
				reported = true
			}
		}
	}
	io.Copy(io.Discard, r) // a line over 1 MiB: keep draining so the child never blocks
}

// alive reports whether the process is still running.
func (n *node) alive() bool {
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// exitErr is how the process ended: nil for exit status 0. Only after exited.
func (n *node) exitErr() error {
	<-n.exited
	return n.err
}

// stop sends SIGTERM, so the server ends its streams with bye and hands its
// sessions over, and waits up to grace before SIGKILL. It returns once the
// process is gone; an exit by SIGTERM's own default or with status 0 is no
// error.
func (n *node) stop(grace time.Duration) error {
	if !n.alive() {
		return nil
	}
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: SIGTERM: %w", n.name, err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-n.exited:
		return n.exitErr()
	case <-t.C:
	}
	n.kill()
	return fmt.Errorf("%s: still running %v after SIGTERM: killed", n.name, grace)
}

// kill ends the process at once (SIGKILL), as a crash would, and waits for it.
func (n *node) kill() {
	if n.alive() {
		n.cmd.Process.Kill()
	}
	<-n.exited
}

// lineWriter writes whole lines from several children to one writer, each
// prefixed with its node's name, so that the lines never interleave.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) line(name, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%-6s| %s\n", name, text)
}
