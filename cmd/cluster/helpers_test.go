package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// wait bounds every "eventually": generous, for a busy 2-core machine.
const wait = 30 * time.Second

// nodeHeader names the node that answered, on every answer in cluster mode.
const nodeHeader = "X-Xhrsse-Node"

// goBuild compiles the package pkg into a temporary directory.
func goBuild(t *testing.T, pkg, name string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), name)
	out, err := exec.Command(goBin, "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// server builds the real server binary.
func server(t *testing.T) string {
	t.Helper()
	return goBuild(t, "github.com/xhrsse/xhrsse/cmd/server", "xhrsse-server")
}

// testLogger logs into the test's output.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testConfig is a cluster of n nodes on free loopback ports.
func testConfig(t *testing.T, n int) config {
	return config{
		serverBin:  server(t),
		nodes:      n,
		addr:       "127.0.0.1:0",
		natsAddr:   "127.0.0.1:0",
		storeDir:   t.TempDir(),
		startWait:  wait,
		stopGrace:  wait,
		log:        testLogger(t),
		nodeOutput: t.Output(),
	}
}

// gone reports whether no process pid exists any more (it was waited for).
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// refused reports whether nothing listens on the host:port of a URL.
func refused(rawURL string) bool {
	addr := strings.TrimPrefix(strings.TrimPrefix(rawURL, "http://"), "nats://")
	addr = strings.TrimSuffix(addr, "/")
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return true
}

// client is plain HTTP against the proxy or a node.
type client struct {
	t  *testing.T
	hc *http.Client
}

func newClient(t *testing.T) *client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, hc: &http.Client{Transport: tr, Timeout: wait}}
}

// get answers GET url: status, the answering node, body.
func (c *client) get(url string) (int, string, string) {
	c.t.Helper()
	resp, err := c.hc.Get(url)
	if err != nil {
		c.t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(nodeHeader), string(b)
}

// post sends a JSON body and decodes a JSON answer into into (if not nil).
func (c *client) post(url string, body any, into any) (int, string) {
	c.t.Helper()
	b, _ := json.Marshal(body)
	resp, err := c.hc.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		c.t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if into != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(answer, into); err != nil {
			c.t.Fatalf("POST %s: answer %q: %v", url, answer, err)
		}
	}
	return resp.StatusCode, resp.Header.Get(nodeHeader)
}

// events is one open GET /events, decoded.
type events struct {
	node   string // who serves it
	cancel context.CancelFunc
	body   io.ReadCloser
	dec    *protocol.Decoder
}

// open opens a session's stream at base and reads its first event.
func (c *client) open(base, session string) *events {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events?session="+session, nil)
	req.Header.Set("Accept", "text/event-stream")
	sc := *c.hc
	sc.Timeout = 0
	resp, err := sc.Do(req)
	if err != nil {
		cancel()
		c.t.Fatalf("GET /events: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		c.t.Fatalf("GET /events: %s %s", resp.Status, b)
	}
	ev := &events{node: resp.Header.Get(nodeHeader), cancel: cancel, body: resp.Body, dec: protocol.NewDecoder(resp.Body, 1<<20)}
	c.t.Cleanup(ev.close)
	m, err := ev.dec.Next()
	if err != nil || m.Name != protocol.EventSession {
		c.t.Fatalf("first event %+v, %v: want session", m, err)
	}
	return ev
}

func (e *events) close() { e.cancel(); e.body.Close() }

// waitChat reads until a live chat with text arrives, or fails after wait.
func (e *events) waitChat(t *testing.T, text string) {
	t.Helper()
	timer := time.AfterFunc(wait, e.close)
	defer timer.Stop()
	for {
		m, err := e.dec.Next()
		if err != nil {
			t.Fatalf("stream on %s ended before chat %q arrived: %v", e.node, text, err)
		}
		if m.Name != protocol.EventChat {
			continue
		}
		var c protocol.Chat
		if err := json.Unmarshal([]byte(m.Data), &c); err != nil {
			t.Fatalf("chat data %q: %v", m.Data, err)
		}
		if c.Text == text {
			return
		}
	}
}

// varz is the part of NATS's /varz the tests read.
type varz struct {
	InMsgs  int64 `json:"in_msgs"`
	OutMsgs int64 `json:"out_msgs"`
}

// brokerStats reads the broker's message counters from its monitoring port.
func brokerStats(t *testing.T, c *client, monitor string) varz {
	t.Helper()
	if monitor == "" {
		t.Fatal("the broker has no monitoring endpoint")
	}
	status, _, body := c.get(monitor + "/varz")
	var v varz
	if err := json.Unmarshal([]byte(body), &v); status != http.StatusOK || err != nil {
		t.Fatalf("/varz: %d, %v", status, err)
	}
	return v
}
