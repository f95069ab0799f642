package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/internal/testserver"
)

// tmuxTerm is a tmux server of its own (socket name) running the built
// client in a detached session of a fixed size.
type tmuxTerm struct {
	t      *testing.T
	socket string
}

func (x *tmuxTerm) run(args ...string) (string, error) {
	cmd := exec.Command("tmux", append([]string{"-L", x.socket}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (x *tmuxTerm) must(args ...string) string {
	x.t.Helper()
	out, err := x.run(args...)
	if err != nil {
		x.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// screen is what the terminal shows now.
func (x *tmuxTerm) screen() string {
	x.t.Helper()
	return x.must("capture-pane", "-p", "-t", "tui")
}

// waitScreen waits (up to ssetest.Wait) until cond holds on the screen,
// and returns that screen.
func (x *tmuxTerm) waitScreen(what string, cond func(string) bool) string {
	x.t.Helper()
	var s string
	ssetest.Eventually(x.t, what, func() error {
		if s = x.screen(); cond(s) {
			return nil
		}
		return fmt.Errorf("screen:\n%s", s)
	})
	return s
}

// buildTUI builds the real binary into a temporary directory.
func buildTUI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tui")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestEndToEndTmux runs the built client in a real terminal (tmux) against a
// real server and drives it with keys, reading the screen as a user would.
func TestEndToEndTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux is required for this test (apt-get install -y tmux): %v", err)
	}
	bin := buildTUI(t)
	srv := testserver.Start(t, fastChannels(10))
	_, events := listen(t, srv.URL)

	x := &tmuxTerm{t: t, socket: fmt.Sprintf("xhrsse-tui-test-%d-%d", os.Getpid(), time.Now().UnixNano())}
	t.Cleanup(func() { _, _ = x.run("kill-server") })
	dir := t.TempDir()
	// A shell runs the client and then prints its exit status, which stays
	// on the screen for the test to read.
	script := fmt.Sprintf("%s -server %s -name e2e -dir %s; echo client-exit=$?; sleep 600",
		shellQuote(bin), shellQuote(srv.URL), shellQuote(dir))
	x.must("new-session", "-d", "-s", "tui", "-x", "100", "-y", "30",
		"env", "TERM=xterm-256color", "sh", "-c", script)

	x.waitScreen("three panes, every one on from the start", func(s string) bool {
		return paneState(s, "1 Letters") == "on" && paneState(s, "2 Ideographs") == "on" &&
			paneState(s, "3 Arrows") == "on" && strings.Contains(s, "connected")
	})
	x.must("send-keys", "-t", "tui", "n")
	s := x.waitScreen("three panes, tuned out", func(s string) bool {
		return paneState(s, "1 Letters") == "off" && paneState(s, "2 Ideographs") == "off" &&
			paneState(s, "3 Arrows") == "off"
	})

	// Tune in channel one: its title says on and new characters appear,
	// while the others' (from before n) stay as they were.
	x.must("send-keys", "-t", "tui", "1")
	zhe := strings.Count(s, "Ж")
	s = x.waitScreen("channel one on with characters", func(s string) bool {
		return paneState(s, "1 Letters") == "on" && strings.Count(s, "Ж") >= zhe+5
	})
	han, all := strings.Count(s, "漢"), strings.Count(s, "∀")
	zhe = strings.Count(s, "Ж")
	s = x.waitScreen("channel one goes on", func(s string) bool { return strings.Count(s, "Ж") >= zhe+5 })
	if strings.Count(s, "漢") != han || strings.Count(s, "∀") != all {
		t.Fatalf("untuned channels show new characters:\n%s", s)
	}

	// Chat: type a line, see it come back in the chat pane, and at another
	// client.
	x.must("send-keys", "-t", "tui", "c")
	x.waitScreen("chat input focused", func(s string) bool { return strings.Contains(s, "enter to send") })
	x.must("send-keys", "-t", "tui", "-l", "hello from tmux, q is text")
	x.must("send-keys", "-t", "tui", "Enter")
	x.waitScreen("own chat line", func(s string) bool { return strings.Contains(s, "e2e: hello from tmux, q is text") })
	waitChat(t, events, "e2e", "hello from tmux, q is text")

	// Resize the terminal: the layout follows and keeps its content.
	x.must("resize-window", "-t", "tui", "-x", "80", "-y", "24")
	x.waitScreen("80x24 layout", func(s string) bool {
		lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
		return len(lines) == 24 && strings.HasPrefix(lines[0], "╭") && strings.HasSuffix(lines[0], "╮") &&
			len([]rune(lines[0])) == 80 && strings.Contains(s, "e2e: hello from tmux") && strings.Contains(s, "Ж")
	})

	// Leave the input, then q quits: the session ends with the program.
	x.must("send-keys", "-t", "tui", "Escape")
	x.waitScreen("chat input left", func(s string) bool { return strings.Contains(s, "c or tab to chat") })
	x.must("send-keys", "-t", "tui", "q")
	s = x.waitScreen("the client exits", func(s string) bool { return strings.Contains(s, "client-exit=") })
	if !strings.Contains(s, "client-exit=0") || strings.Contains(s, "panic") || strings.Contains(s, "goroutine ") {
		t.Fatalf("the client did not end cleanly:\n%s", s)
	}
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// paneState returns the on/off word at the end of the title bar that starts
// with title ("" if there is none).
func paneState(s, title string) string {
	for _, l := range strings.Split(s, "\n") {
		_, after, ok := strings.Cut(l, title)
		if !ok {
			continue
		}
		bar, _, _ := strings.Cut(after, "│")
		f := strings.Fields(bar)
		if len(f) == 0 {
			return ""
		}
		return f[len(f)-1]
	}
	return ""
}

// TestPublishedTmux runs the built client in tmux at 80x24 against a server
// with a published channel, publishes over HTTP, and reads the lines off
// the terminal: escape sequences and bidi controls arrive as plain text.
func TestPublishedTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux is required for this test (apt-get install -y tmux): %v", err)
	}
	bin := buildTUI(t)
	srv := withPublished(t, 5)
	publish := publisher(t, srv.URL)

	x := &tmuxTerm{t: t, socket: fmt.Sprintf("xhrsse-tui-pub-%d-%d", os.Getpid(), time.Now().UnixNano())}
	t.Cleanup(func() { _, _ = x.run("kill-server") })
	script := fmt.Sprintf("%s -server %s -name e2e -dir %s; echo client-exit=$?; sleep 600",
		shellQuote(bin), shellQuote(srv.URL), shellQuote(t.TempDir()))
	x.must("new-session", "-d", "-s", "tui", "-x", "80", "-y", "24",
		"env", "TERM=xterm-256color", "sh", "-c", script)
	x.waitScreen("the log pane, on", func(s string) bool {
		return paneState(s, "4 Build log") == "on" && strings.Contains(s, "connected")
	})

	publish("hello from a publisher")
	publish("\x1b[31mred\x1b[0m \x1b[2J \u202Eevil\u202C <i>x</i>")
	s := x.waitScreen("both lines on the terminal", func(s string) bool {
		return strings.Contains(s, "hello from a publisher") && strings.Contains(s, "<i>x</i>")
	})
	if !strings.Contains(s, "\uFFFD[31mred\uFFFD[0m \uFFFD[2J \uFFFDevil\uFFFD <i>x</i>") {
		t.Fatalf("the escape sequences are not shown as text:\n%s", s)
	}
	// A long line of wide characters wraps by cells: every box line on the
	// terminal is exactly 80 cells, its right border in the last column.
	publish(strings.Repeat("漢字かな ", 12) + "end")
	s = x.waitScreen("the wide line", func(s string) bool { return strings.Contains(s, "end") })
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) != 24 {
		t.Fatalf("%d lines on an 80x24 terminal:\n%s", len(lines), s)
	}
	for i, l := range lines {
		if strings.HasPrefix(l, "╭") || strings.HasPrefix(l, "│") || strings.HasPrefix(l, "╰") {
			if w := cellWidth(l); w != 80 {
				t.Fatalf("line %d is %d cells:\n%s", i, w, s)
			}
		}
	}
	// The newest line is below the older one.
	if older, newer := strings.Index(s, "<i>x</i>"), strings.Index(s, "end"); older < 0 || older > newer {
		t.Fatalf("the newest line is not at the bottom:\n%s", s)
	}

	x.must("send-keys", "-t", "tui", "q")
	s = x.waitScreen("the client exits", func(s string) bool { return strings.Contains(s, "client-exit=") })
	if !strings.Contains(s, "client-exit=0") {
		t.Fatalf("the client did not end cleanly:\n%s", s)
	}
}
