package cluster_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/cluster"
	"github.com/xhrsse/xhrsse/pkg/protocol"
	"github.com/xhrsse/xhrsse/pkg/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// A broker is an embedded nats-server with JetStream, on loopback.
type broker struct {
	t    *testing.T
	dir  string
	port int
	srv  *natsserver.Server
}

func startBroker(t *testing.T) *broker {
	t.Helper()
	b := &broker{t: t, dir: t.TempDir(), port: -1}
	b.start()
	t.Cleanup(b.stop)
	return b
}

// start runs the broker, on the port it had before if it ran already, with
// the same store: a restart.
func (b *broker) start() {
	b.t.Helper()
	opts := &natsserver.Options{
		Host: "127.0.0.1", Port: b.port, JetStream: true, StoreDir: b.dir,
		NoLog: true, NoSigs: true,
	}
	var err error
	for range 50 { // the old port may linger a moment
		if b.srv, err = natsserver.NewServer(opts); err != nil {
			b.t.Fatalf("broker: %v", err)
		}
		go b.srv.Start()
		if b.srv.ReadyForConnections(10 * time.Second) {
			break
		}
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
		time.Sleep(100 * time.Millisecond)
	}
	if !b.srv.Running() {
		b.t.Fatal("broker did not start")
	}
	b.port = b.srv.Addr().(*net.TCPAddr).Port
}

func (b *broker) stop() {
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
}

func (b *broker) url() string { return "nats://127.0.0.1:" + strconv.Itoa(b.port) }

// A node is a whole xhrsse server in a cluster: hub, API, cluster node and
// http.Server on a loopback port, wired as cmd/server wires them.
type node struct {
	URL  string
	Hub  *broadcast.Hub
	Node *cluster.Node
	srv  *http.Server
	done chan struct{}
	gone bool
}

func startNode(t *testing.T, b *broker, name string, opts ...broadcast.Option) *node {
	t.Helper()
	return startNodeWith(t, b, name, nil, opts...)
}

// startNodeWith is startNode with the cluster's config changed by with (if
// not nil) before the node dials: a logger, say.
func startNodeWith(t *testing.T, b *broker, name string, with func(*cluster.Config), opts ...broadcast.Option) *node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	described, err := broadcast.Describe(broadcast.DefaultChannelsAt(20))
	if err != nil {
		t.Fatal(err)
	}
	cfg := cluster.Config{
		URL: b.url(), Node: name, Claim: 300 * time.Millisecond, ReconnectWait: 50 * time.Millisecond,
		Channels: described,
	}
	if with != nil {
		with(&cfg)
	}

	cn, err := cluster.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := broadcast.New(append([]broadcast.Option{
		broadcast.WithChannels(broadcast.DefaultChannelsAt(20)...),
		broadcast.WithSeed(cn.Seed()), broadcast.WithRelay(cn),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	api, err := server.New(hub, server.Config{Cluster: cn, Collectors: cn.Collectors()})
	if err != nil {
		t.Fatal(err)
	}
	if err := cn.Start(hub, api); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &node{URL: "http://" + ln.Addr().String(), Hub: hub, Node: cn, srv: server.HTTPServer(api, hub), done: make(chan struct{})}
	go func() {
		defer close(n.done)
		_ = n.srv.Serve(ln)
	}()
	t.Cleanup(n.kill)
	return n
}

// kill stops the node as a crash would, as far as the others can tell: its
// connections are cut (no bye), it leaves the broker and hands nothing over.
func (n *node) kill() {
	if n.gone {
		return
	}
	n.gone = true
	n.srv.Close()
	<-n.done
	n.Node.Close()
	n.Hub.Close(context.Background())
}

// shutdown stops the node as cmd/server does on SIGTERM: streams end with
// bye, then it hands sessions over to the nodes their clients come back to.
func (n *node) shutdown(handover time.Duration) int {
	n.gone = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = server.Shutdown(ctx, n.srv, n.Hub)
	<-n.done
	hctx, hcancel := context.WithTimeout(context.Background(), handover)
	left := n.Node.Handover(hctx)
	hcancel()
	n.Node.Close()
	return left
}

// post sends a JSON POST and decodes the answer into out (if not nil); it
// returns the status and the node that answered.
func post(t *testing.T, url string, in, out any) (int, string) {
	t.Helper()
	body, _ := json.Marshal(in)
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("POST %s: %v in %q", url, err, raw)
		}
	}
	return resp.StatusCode, resp.Header.Get("X-Xhrsse-Node")
}

func newSession(t *testing.T, n *node, channels ...string) string {
	t.Helper()
	var created protocol.SessionCreated
	if st, _ := post(t, n.URL+"/sessions", protocol.CreateSession{Channels: channels}, &created); st != http.StatusCreated {
		t.Fatalf("POST /sessions: %d", st)
	}
	return created.Session
}

// A stream reads one SSE connection into Events until closed.
type stream struct {
	Events chan protocol.Message
	resp   *http.Response
	cancel context.CancelFunc
	done   chan struct{}
	node   string
}

func openStream(t *testing.T, n *node, session string, lastID string) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL+"/events?session="+session, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET /events on %s: %d %s", n.URL, resp.StatusCode, raw)
	}
	s := &stream{Events: make(chan protocol.Message, 4096), resp: resp, cancel: cancel, done: make(chan struct{}), node: resp.Header.Get("X-Xhrsse-Node")}
	go func() {
		defer close(s.done)
		defer close(s.Events)
		dec := protocol.NewDecoder(bufio.NewReader(resp.Body), 1<<20)
		for {
			m, err := dec.Next()
			if err != nil {
				return
			}
			select {
			case s.Events <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *stream) close() {
	s.cancel()
	s.resp.Body.Close()
	<-s.done
}

// next returns the next event, failing the test after a generous wait.
func (s *stream) next(t *testing.T) protocol.Message {
	t.Helper()
	select {
	case m, ok := <-s.Events:
		if !ok {
			t.Fatal("stream ended")
		}
		return m
	case <-time.After(20 * time.Second):
		t.Fatal("no event for 20 s")
	}
	return protocol.Message{}
}

// until reads events until one satisfies ok, and returns them all.
func (s *stream) until(t *testing.T, ok func(protocol.Message) bool) []protocol.Message {
	t.Helper()
	var got []protocol.Message
	for {
		m := s.next(t)
		got = append(got, m)
		if ok(m) {
			return got
		}
	}
}

func named(name string) func(protocol.Message) bool {
	return func(m protocol.Message) bool { return m.Name == name }
}

func chatText(text string) func(protocol.Message) bool {
	return func(m protocol.Message) bool {
		var c protocol.Chat
		return m.Name == protocol.EventChat && json.Unmarshal([]byte(m.Data), &c) == nil && c.Text == text
	}
}

// ids checks that the events carry consecutive ids after from (session and
// bye carry the position instead) and returns the last.
func ids(t *testing.T, from uint64, evs []protocol.Message) uint64 {
	t.Helper()
	last := from
	for _, m := range evs {
		if m.Name == protocol.EventSession || m.Name == protocol.EventBye {
			continue
		}
		id, err := strconv.ParseUint(m.ID, 10, 64)
		if err != nil {
			t.Fatalf("event %s without a numeric id: %q", m.Name, m.ID)
		}
		if id != last+1 {
			t.Fatalf("event %s has id %d after %d", m.Name, id, last)
		}
		last = id
	}
	return last
}

// eventually retries f until it returns nil, for up to 20 s.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var errStatus = errors.New("status")

func statusErr(code int) error { return fmt.Errorf("%w %d", errStatus, code) }

// metric reads one counter or gauge (no labels) from a node's /metrics.
func metric(t *testing.T, n *node, name string) float64 {
	t.Helper()
	resp, err := http.Get(n.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("%s: no metric %s", n.Node.Name(), name)
	return 0
}
