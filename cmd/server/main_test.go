package main

// End-to-end tests of the real binary: built with go build, run as a child
// process on 127.0.0.1:0, stopped with SIGTERM.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// wait bounds every "eventually": generous, for a busy 2-core machine.
const wait = 20 * time.Second

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// build compiles this command into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "server")
	out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// A proc is a running server binary.
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer  // all of it, guarded by mu
	url    chan string   // the URL it logged it listens on
	exited chan struct{} // closed when it has exited; then err is set
	err    error
}

var listening = regexp.MustCompile(`msg=listening url=(http://127\.0\.0\.1:\d+/)`)

// startBinary starts the binary; it is killed when the test ends if still running.
// listening waits for the binary to say where it listens and returns that
// URL.
func (p *proc) listening(t *testing.T) string {
	t.Helper()
	select {
	case base := <-p.url:
		return base
	case <-p.exited:
		t.Fatalf("exited before listening: %v\n%s", p.err, p.log())
	case <-time.After(wait):
		t.Fatalf("no listening line; stderr:\n%s", p.log())
	}
	return ""
}

func startBinary(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), url: make(chan string, 1), exited: make(chan struct{})}
	errPipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case p.url <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, errPipe)
		p.err = p.cmd.Wait() // after the pipe is drained, as Wait requires
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// waitExit waits for the process to exit and returns its exit code.
func (p *proc) waitExit(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(within):
		t.Fatalf("still running after %v; stderr:\n%s", within, p.log())
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("wait: %v", p.err)
	return -1
}

// TestSIGTERM: the binary logs where it listens, serves a stream, and on
// SIGTERM sends bye "shutdown" and exits 0 within its shutdown timeout.
func TestSIGTERM(t *testing.T) {
	bin := build(t)
	const shutdownTimeout = 10 * time.Second
	p := startBinary(t, bin, "-addr", "127.0.0.1:0", "-rate-one", "100", "-shutdown-timeout", shutdownTimeout.String(), "-log-level", "debug")
	base := p.listening(t)

	hc := ssetest.Client(t)
	s := ssetest.Open(t, hc, base+"events", nil)
	ev, pos := s.Session(t)
	if pos != 0 || s.Retry() != protocol.RetryMillis || ev.Session == "" {
		t.Fatalf("session event %+v at %d (retry %d), want a session at 0 after retry 2000", ev, pos, s.Retry())
	}
	tune, err := hc.Post(base+"sessions/"+ev.Session+"/channels", "application/json", strings.NewReader(`{"channel":"one","on":true}`))
	if err != nil {
		t.Fatal(err)
	}
	tune.Body.Close()
	if tune.StatusCode != http.StatusOK {
		t.Fatalf("tune: %d", tune.StatusCode)
	}
	s.Expect(t, protocol.EventTuned)
	s.Expect(t, "one")

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	m, _ := s.Until(t, "an event other than a tick", func(m protocol.Message) bool { return m.Name != "one" })
	var bye protocol.Bye
	if m.Name != protocol.EventBye || json.Unmarshal([]byte(m.Data), &bye) != nil || bye.Reason != protocol.ByeShutdown {
		t.Fatalf("after SIGTERM got %s %q, want bye shutdown", m.Name, m.Data)
	}
	if rest := s.End(t); len(rest) > 0 {
		t.Fatalf("after bye: %s, want the end of the stream", rest[0].Name)
	}
	if code := p.waitExit(t, shutdownTimeout); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; stderr:\n%s", code, p.log())
	}
	log := p.log()
	for _, want := range []string{"msg=\"shutting down\"", "msg=stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("stderr lacks %s:\n%s", want, log)
		}
	}
	// PROTOCOL.md: a session id is never printed whole in logs.
	if strings.Contains(log, ev.Session) {
		t.Errorf("stderr contains a whole session id:\n%s", log)
	}
}

// TestBadFlags: a bad flag stops the binary before it listens, with a non-zero
// exit and a message that names the problem.
func TestBadFlags(t *testing.T) {
	bin := build(t)
	cases := []struct {
		name string
		args []string
		want []string // all in stderr
	}{
		{"control character in a repertoire", []string{"-chars-one", "=ab\x01"}, []string{"-chars-one", "U+0001"}},
		{"control range in a repertoire", []string{"-chars-three", "0000-001F"}, []string{"-chars-three", "U+0000"}},
		{"mixed widths", []string{"-chars-two", "=a日"}, []string{"two", "wide"}},
		{"bad code point", []string{"-chars-one", "zz"}, []string{"-chars-one", "zz"}},
		{"zero rate", []string{"-rate-two", "0"}, []string{"two", "rate"}},
		{"negative rate", []string{"-rate-one", "-5"}, []string{"one", "rate"}},
		{"rate not a number", []string{"-rate-one", "fast"}, []string{"-rate-one"}},
		{"unknown flag", []string{"-nope"}, []string{"nope"}},
		{"bad log level", []string{"-log-level", "loud"}, []string{"-log-level"}},
		{"missing files dir", []string{"-files", "/nonexistent/xhrsse"}, []string{"files"}},
		{"bad allowed origin", []string{"-allow-origin", "evil.example"}, []string{"evil.example"}},
		{"zero session TTL", []string{"-session-ttl", "0s"}, []string{"TTL"}},
		{"bad address", []string{"-addr", "127.0.0.1:notaport"}, []string{"notaport"}},
		{"bad node name", []string{"-nats", "nats://127.0.0.1:1", "-node", "a.b"}, []string{`"a.b"`}},
		{"no broker", []string{"-nats", "nats://127.0.0.1:1"}, []string{"nats://127.0.0.1:1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"-addr", "127.0.0.1:0"}, c.args...)
			p := startBinary(t, bin, args...)
			code := p.waitExit(t, wait)
			log := p.log()
			if code == 0 {
				t.Fatalf("exit code 0; stderr:\n%s", log)
			}
			if strings.Contains(log, "msg=listening") {
				t.Fatalf("listened despite the bad flag; stderr:\n%s", log)
			}
			for _, w := range c.want {
				if !strings.Contains(log, w) {
					t.Errorf("stderr lacks %q:\n%s", w, log)
				}
			}
		})
	}
}
