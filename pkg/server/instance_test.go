package server_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
	"github.com/xhrsse/xhrsse/pkg/server"
)

// instanceWait bounds each wait of these tests; they never take that long
// unless something is wrong.
const instanceWait = 15 * time.Second

// node is a cluster node that is alone in its cluster: it answers for the
// hub's sessions only, and records what the server asks of it, in order.
type node struct {
	startErr error // what Start returns

	mu    sync.Mutex
	calls []string // guarded by mu
	// streams is how many streams the hub had when Handover was called;
	// deadline is how long Handover was given. Guarded by mu.
	streams  int
	deadline time.Duration
	hub      *broadcast.Hub // guarded by mu
}

var _ server.ClusterNode = (*node)(nil)

func (n *node) called(c string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, c)
}

func (n *node) history() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.calls)
}

func (n *node) Name() string                                       { return "alone" }
func (n *node) Register(context.Context, *broadcast.Session) error { return nil }
func (n *node) Forwarded(*http.Request) bool                       { return false }
func (n *node) SessionChanged(broadcast.SessionChange)             {}
func (n *node) Seed() [32]byte                                     { return [32]byte{1} }
func (n *node) Collectors() []prometheus.Collector                 { return nil }
func (n *node) PublishChat(context.Context, protocol.Chat) (int64, error) {
	return 0, broadcast.ErrUnavailable
}

func (n *node) Forward(http.ResponseWriter, *http.Request, string, []byte) bool { return false }

func (n *node) Take(context.Context, string, broadcast.Position) (*broadcast.Session, error) {
	return nil, broadcast.ErrUnknownSession
}

func (n *node) Start(hub *broadcast.Hub, _ http.Handler) error {
	n.called("start")
	n.mu.Lock()
	n.hub = hub
	n.mu.Unlock()
	return n.startErr
}

func (n *node) Handover(ctx context.Context) int {
	n.called("handover")
	n.mu.Lock()
	defer n.mu.Unlock()
	n.streams = n.hub.StreamCount()
	if d, ok := ctx.Deadline(); ok {
		n.deadline = time.Until(d)
	}
	return n.hub.SessionCount()
}

func (n *node) Close() error {
	n.called("close")
	return nil
}

// TestStartFailsClosesAll: whatever step of Start fails, what it had
// started is closed, the cluster node too, and no goroutine is left.
func TestStartFailsClosesAll(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cases := []struct {
		name  string
		opts  server.Options
		node  *node
		want  func(error) bool
		calls []string
	}{
		{"address in use", server.Options{Addr: busy.Addr().String()}, &node{},
			func(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }, []string{"start", "close"}},
		{"pprof address in use", server.Options{Pprof: busy.Addr().String()}, &node{},
			func(err error) bool {
				return errors.Is(err, syscall.EADDRINUSE) && strings.Contains(err.Error(), "pprof")
			},
			[]string{"start", "close"}},
		{"cluster does not start", server.Options{}, &node{startErr: broadcast.ErrUnavailable},
			func(err error) bool { return errors.Is(err, broadcast.ErrUnavailable) }, []string{"start", "close"}},
		{"bad API config", server.Options{API: server.Config{AllowOrigins: []string{"evil.example"}}}, &node{},
			func(err error) bool { return err != nil && strings.Contains(err.Error(), "evil.example") }, []string{"close"}},
		{"bad hub option", server.Options{Hub: []broadcast.Option{broadcast.WithSessionTTL(0)}}, &node{},
			func(err error) bool { return err != nil }, []string{"close"}},
		{"address in use, no cluster", server.Options{Addr: busy.Addr().String()}, nil,
			func(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			o := c.opts
			if c.node != nil {
				o.Cluster = c.node
			}
			in, err := server.Start(context.Background(), o)
			if err == nil {
				in.Close()
				t.Fatal("Start succeeded")
			}
			if !c.want(err) {
				t.Fatalf("Start: %v", err)
			}
			if c.node != nil {
				if got := c.node.history(); !slices.Equal(got, c.calls) {
					t.Fatalf("the node was asked %v, want %v", got, c.calls)
				}
			}
		})
	}
}

// startStreaming starts a server in n's cluster and opens a stream on it,
// whose first event, the session's, it reads. done closes the stream's
// connection.
func startStreaming(t *testing.T, n *node, handover time.Duration) (in *server.Instance, dec *protocol.Decoder, done func()) {
	t.Helper()
	in, err := server.Start(context.Background(), server.Options{Cluster: n, Handover: handover})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	hc := &http.Client{Transport: tr, Timeout: instanceWait}
	resp, err := hc.Get(in.URL() + "/events")
	if err != nil {
		in.Close()
		t.Fatal(err)
	}
	done = func() {
		resp.Body.Close()
		tr.CloseIdleConnections()
	}
	dec = protocol.NewDecoder(resp.Body, 1<<20)
	if m, err := dec.Next(); err != nil || m.Name != protocol.EventSession {
		done()
		in.Close()
		t.Fatalf("first event %s %v (status %d), want session", m.Name, err, resp.StatusCode)
	}
	return in, dec, done
}

// TestInstanceShutdown: Shutdown ends every stream with bye and closes the
// listener, then hands the sessions over (with the streams gone, for
// Options.Handover), then closes the node; a second Shutdown or a Close
// changes nothing.
func TestInstanceShutdown(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	n := &node{}
	const handover = time.Minute
	in, dec, done := startStreaming(t, n, handover)
	defer done()

	ctx, cancel := context.WithTimeout(context.Background(), instanceWait)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- in.Shutdown(ctx) }()
	for {
		m, err := dec.Next()
		if err != nil {
			t.Fatalf("stream ended without bye: %v", err)
		}
		if m.Name == protocol.EventBye {
			if !strings.Contains(m.Data, protocol.ByeShutdown) {
				t.Fatalf("bye %s", m.Data)
			}
			break
		}
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case <-in.Done():
	default:
		t.Fatal("Done is open after Shutdown")
	}
	if got, want := n.history(), []string{"start", "handover", "close"}; !slices.Equal(got, want) {
		t.Fatalf("the node was asked %v, want %v", got, want)
	}
	if n.streams != 0 {
		t.Errorf("handover began with %d streams open, want none", n.streams)
	}
	if n.deadline <= 0 || n.deadline > handover {
		t.Errorf("handover given %v, want at most %v", n.deadline, handover)
	}
	if c, err := net.DialTimeout("tcp", in.Addr(), instanceWait); err == nil {
		c.Close()
		t.Error("the listener still accepts after Shutdown")
	}
	if err := in.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if err := in.Close(); err != nil {
		t.Errorf("Close after Shutdown: %v", err)
	}
	if got := n.history(); len(got) != 3 {
		t.Errorf("after a second stop the node was asked %v", got)
	}
}

// TestInstanceClose: Close cuts the streams without bye and leaves the
// cluster without a hand-over, as a crash would.
func TestInstanceClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	n := &node{}
	in, dec, done := startStreaming(t, n, time.Minute)
	defer done()
	if err := in.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for {
		m, err := dec.Next()
		if err != nil {
			break // cut
		}
		if m.Name == protocol.EventBye {
			t.Fatalf("bye %s after Close, want the connection cut", m.Data)
		}
	}
	if got, want := n.history(), []string{"start", "close"}; !slices.Equal(got, want) {
		t.Fatalf("the node was asked %v, want %v", got, want)
	}
}

// TestInstancePprof: Options.Pprof serves the profiles on their own
// address, and the public one does not.
func TestInstancePprof(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var logs ssetest.Buffer
	in, err := server.Start(context.Background(), server.Options{
		Pprof:  "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	m := regexp.MustCompile(`msg=pprof url=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no pprof line in the log:\n%s", logs.String())
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: instanceWait}
	get := func(url string) int {
		t.Helper()
		resp, err := hc.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := get(m[1] + "cmdline"); st != http.StatusOK {
		t.Errorf("pprof cmdline: %d", st)
	}
	if st := get(in.URL() + "/debug/pprof/cmdline"); st != http.StatusNotFound {
		t.Errorf("pprof on the public address: %d, want 404", st)
	}
	if !strings.Contains(logs.String(), "msg=listening url="+in.URL()+"/") {
		t.Errorf("no listening line for %s:\n%s", in.URL(), logs.String())
	}
}
