package cluster_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
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

func newSession(t *testing.T, n *clustertest.Node, channels ...string) string {
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

func openStream(t *testing.T, n *clustertest.Node, session string, lastID string) *stream {
	t.Helper()
	var (
		ctx    context.Context
		cancel context.CancelFunc
		resp   *http.Response
	)
	// A 503 says "try again" (a session between nodes, a node lost a moment
	// ago): as a client would, for a while.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ctx, cancel = context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL+"/events?session="+session, nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		var err error
		if resp, err = http.DefaultClient.Do(req); err != nil {
			cancel()
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusOK {
			break
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("GET /events on %s: %d %s", n.URL, resp.StatusCode, raw)
		}
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
func metric(t *testing.T, n *clustertest.Node, name string) float64 {
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
