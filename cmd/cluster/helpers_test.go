package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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

	"github.com/xhrsse/xhrsse/internal/ssetest"
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
	*ssetest.Stream
	node string // who serves it
}

// open opens a session's stream at base and reads its first event.
func (c *client) open(base, session string) *events {
	c.t.Helper()
	sc := *c.hc
	sc.Timeout = 0
	s := ssetest.Open(c.t, &sc, base+"/events?session="+session, http.Header{"Accept": {"text/event-stream"}})
	s.Expect(c.t, protocol.EventSession)
	return &events{Stream: s, node: s.Response.Header.Get(nodeHeader)}
}

// waitChat reads until a live chat with text arrives, or fails after
// ssetest.Wait.
func (e *events) waitChat(t *testing.T, text string) {
	t.Helper()
	e.Until(t, fmt.Sprintf("chat %q on %s", text, e.node), func(m protocol.Message) bool {
		if m.Name != protocol.EventChat {
			return false
		}
		return ssetest.Decode[protocol.Chat](t, m).Text == text
	})
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
