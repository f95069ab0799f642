package proxytest

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// toolPath finds a command-line client the tests need, failing with what to
// install if it is missing.
func toolPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("no %s on PATH; install it (Debian: apt-get install -y %s, as .ci/run does)", name, name)
	}
	return p
}

// TestPlainHTTPClients reads GET /events with curl --http1.0 -N and with
// wget -qO-, straight from the server and through nginx: the stream starts
// with its session event, and a chat and a tuned channel then arrive while
// the program still runs. Over HTTP/1.0 there is no chunked encoding; the
// stream is the rest of the connection.
func TestPlainHTTPClients(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ng := startNginx(t, srv.Addr, nginxTweaks{})
	curl, wget := toolPath(t, "curl"), toolPath(t, "wget")
	tools := []struct {
		name string
		args func(url, headers string) []string
	}{
		{"curl --http1.0 -N", func(url, headers string) []string {
			return []string{curl, "--http1.0", "-N", "-sS", "-D", headers, url}
		}},
		{"wget -qO-", func(url, _ string) []string { return []string{wget, "-qO-", url} }},
	}
	for _, via := range []struct{ name, base string }{{"direct", srv.URL}, {"nginx", ng.URL}} {
		for _, tool := range tools {
			t.Run(via.name+"/"+tool.name, func(t *testing.T) {
				t.Parallel()
				headers := filepath.Join(t.TempDir(), "headers")
				events := runTool(t, tool.args(via.base+"/events", headers))
				m := nextFrom(t, events, "the session event", func(m protocol.Message) bool { return true })
				if m.Name != protocol.EventSession {
					t.Fatalf("first event %q, want session", m.Name)
				}
				var se protocol.SessionEvent
				if err := json.Unmarshal([]byte(m.Data), &se); err != nil {
					t.Fatal(err)
				}
				hc := ssetest.Client(t)
				text := "to " + tool.name + " " + via.name
				ssetest.MustPost(t, hc, via.base+"/sessions/"+se.Session+"/chat", protocol.ChatPost{Name: "plain", Text: text}, nil)
				nextFrom(t, events, "the chat", func(m protocol.Message) bool {
					return m.Name == protocol.EventChat && strings.Contains(m.Data, text)
				})
				on := true
				ssetest.MustPost(t, hc, via.base+"/sessions/"+se.Session+"/channels", protocol.Tune{Channel: "one", On: &on}, nil)
				for range 3 {
					nextFrom(t, events, "a tick of one", func(m protocol.Message) bool { return m.Name == "one" })
				}
				if strings.HasPrefix(tool.name, "curl") {
					b, err := os.ReadFile(headers)
					if err != nil {
						t.Fatal(err)
					}
					h := strings.ToLower(string(b))
					if !strings.Contains(h, " 200") || !strings.Contains(h, "content-type: text/event-stream") {
						t.Errorf("curl --http1.0 got the headers:\n%s", b)
					}
					if strings.Contains(h, "transfer-encoding") || strings.Contains(h, "content-length") {
						t.Errorf("an HTTP/1.0 stream with a length or chunked:\n%s", b)
					}
				}
			})
		}
	}
}

// runTool starts the command and decodes its standard output as an event
// stream until the test ends, when the command is killed.
func runTool(t *testing.T, args []string) <-chan protocol.Message {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	events := make(chan protocol.Message, 256)
	done := make(chan struct{})
	// Runs in its own goroutine until the command's output ends.
	go func() {
		defer close(done)
		defer close(events)
		dec := protocol.NewDecoder(out, 1<<20)
		for {
			m, err := dec.Next()
			if err != nil {
				_, _ = io.Copy(io.Discard, out)
				return
			}
			select {
			case events <- m:
			case <-ctx.Done():
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		err := cmd.Wait() // killed: an error that says so
		if t.Failed() {
			t.Logf("%s ended with %v; its stderr:\n%s", strings.Join(args, " "), err, stderr.String())
		}
	})
	return events
}

// nextFrom returns the first event on events for which match is true,
// failing the test if the output ends or none comes in time.
func nextFrom(t *testing.T, events <-chan protocol.Message, what string, match func(protocol.Message) bool) protocol.Message {
	t.Helper()
	timeout := time.After(ssetest.Wait)
	for {
		select {
		case m, ok := <-events:
			if !ok {
				t.Fatalf("the program's output ended before %s", what)
			}
			if match(m) {
				return m
			}
		case <-timeout:
			t.Fatalf("no %s within %v", what, ssetest.Wait)
		}
	}
}
