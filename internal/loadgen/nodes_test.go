package loadgen

import (
	"context"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/server"
)

// doors records which door (node) served each request that names a session.
type doors struct {
	mu     sync.Mutex
	stream map[string]int   // session → the door holding its stream
	posts  map[string][]int // session → the doors its chats and bulks went to
	events []int            // GET /events per door
}

// frontDoors serves one hub on n loopback ports: every door knows every
// session and every stream sees every chat, which is what a cluster
// promises, here without a broker, so the load generator's multi-node side
// is tested on its own. It returns the doors' URLs.
func frontDoors(t *testing.T, n int) ([]string, *doors) {
	ts := testserver.Start(t)
	api, err := server.New(ts.Hub, server.Config{})
	if err != nil {
		t.Fatal(err)
	}
	d := &doors{stream: map[string]int{}, posts: map[string][]int{}, events: make([]int, n)}
	var urls []string
	for k := range n {
		urls = append(urls, serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d.mu.Lock()
			switch {
			case r.Method == http.MethodGet && r.URL.Path == "/events":
				d.stream[r.URL.Query().Get("session")] = k
				d.events[k]++
			case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/sessions/"):
				s := strings.Split(r.URL.Path, "/")[2]
				d.posts[s] = append(d.posts[s], k)
			}
			d.mu.Unlock()
			api.ServeHTTP(w, r)
		}), nil))
	}
	return urls, d
}

// TestRunNodes: with three URLs the streams are spread evenly, each
// session's POSTs go to its stream's node (or, with PostAnywhere, never to
// it), every chat reaches every stream, and the report breaks the run down
// by node and by local or relayed delivery.
func TestRunNodes(t *testing.T) {
	for _, anywhere := range []bool{false, true} {
		name := "own node"
		if anywhere {
			name = "post anywhere"
		}
		t.Run(name, func(t *testing.T) {
			urls, d := frontDoors(t, 3)
			cfg := Config{
				URL: strings.Join(urls, ", "), Streams: 20, Duration: 2 * time.Second, ChatRate: 3, Concurrency: 8,
				PostAnywhere: anywhere, PID: os.Getpid(), BulkBytes: 100_000,
			}
			rep, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkHealthy(t, rep)
			if rep.Target != strings.Join(urls, ",") || rep.PostAnywhere != anywhere {
				t.Errorf("target %q, post anywhere %v; want %q, %v", rep.Target, rep.PostAnywhere, strings.Join(urls, ","), anywhere)
			}

			d.mu.Lock()
			defer d.mu.Unlock()
			// 20 streams (7, 7, 6) and the bulk stream (number 20, on door 2).
			if want := []int{7, 7, 7}; !slices.Equal(d.events, want) {
				t.Errorf("GET /events per door %v, want %v", d.events, want)
			}
			posted := 0
			for s, ks := range d.posts {
				for _, k := range ks {
					posted++
					if own := d.stream[s]; (k == own) == anywhere {
						t.Errorf("session %.8s… streams on door %d and posted to door %d (post anywhere: %v)", s, own, k, anywhere)
					}
				}
			}
			if posted < int(rep.Chat.Sent) || rep.Bulk == nil || rep.Bulk.Transfers == 0 || rep.Bulk.Corrupt != 0 {
				t.Errorf("%d POSTs recorded for %d chats, bulk %+v: want every chat and some whole bulk transfers", posted, rep.Chat.Sent, rep.Bulk)
			}

			if len(rep.Nodes) != 3 {
				t.Fatalf("nodes %+v, want 3", rep.Nodes)
			}
			for i, n := range rep.Nodes {
				want := []int{7, 7, 6}[i]
				if n.URL != urls[i] || n.Opened != want || n.Held != want || n.Drops != 0 || n.Ticks <= 0 || n.ChatLatency.Count == 0 {
					t.Errorf("node %d: %+v; want %s, %d opened and held, ticks and chat latency", i, n, urls[i], want)
				}
			}
			c := rep.Chat
			if c.Local == nil || c.Relayed == nil || c.Local.Count+c.Relayed.Count != c.Latency.Count || c.Relayed.Count == 0 {
				t.Errorf("local %+v + relayed %+v, want them to split %d samples, some relayed", c.Local, c.Relayed, c.Latency.Count)
			}
			if !anywhere && c.Local.Count == 0 {
				t.Error("no local delivery although every chat was posted to its stream's node")
			}
		})
	}
}

// TestRunSingleTargetReportsNoNodes: one URL keeps the report as it was,
// without the per-node breakdown.
func TestRunSingleTargetReportsNoNodes(t *testing.T) {
	ts := testserver.Start(t)
	rep, err := Run(context.Background(), Config{URL: ts.URL, Streams: 2, Duration: time.Second, ChatRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Nodes != nil || rep.Chat.Local != nil || rep.Chat.Relayed != nil || rep.Servers != nil || rep.Target != ts.URL {
		t.Errorf("single target: nodes %v, local %v, relayed %v, servers %v, target %q; want none and %q",
			rep.Nodes, rep.Chat.Local, rep.Chat.Relayed, rep.Servers, rep.Target, ts.URL)
	}
}

func TestRunPostAnywhereNeedsNodes(t *testing.T) {
	ts := testserver.Start(t)
	_, err := Run(context.Background(), Config{URL: ts.URL, Streams: 1, Duration: time.Second, PostAnywhere: true})
	if err == nil || !strings.Contains(err.Error(), "two URLs") {
		t.Errorf("post anywhere with one URL: %v, want a refusal", err)
	}
}
