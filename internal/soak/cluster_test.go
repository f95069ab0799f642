package soak

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/cluster"
)

// The cluster soak: a broker, three nodes (internal/clustertest), and a
// Proxy that spreads every new connection over them with no stickiness and
// cuts streams at random, while channels tick, clients chat and ask for
// transfers through it. Part way through, one node dies
// (TestSoakClusterNodeKilled) or shuts down (TestSoakClusterNodeShutdown).
// Every session is checked as in the single-server soak, with the cluster's
// rules: a gap only at the first resume after a kill, one at most; a 503
// only for a moment, while the session moves; every chat answered 202 seen
// exactly once; every transfer verified by sha256 or, after a kill, failed
// by a gap.

const (
	// clusterTransferLimit bounds one transfer of at most clusterMaxBulk.
	clusterTransferLimit = 30 * time.Second
	clusterMinBulk       = 32 << 10
	clusterMaxBulk       = 768 << 10
)

// What happens to one node part way through.
const (
	nodeKilled   = "killed"
	nodeShutdown = "shut down"
)

// TestSoakClusterNodeKilled: cuts everywhere, and one node crashes part
// way: its sessions come back elsewhere after one gap each, and nothing
// else is lost.
func TestSoakClusterNodeKilled(t *testing.T) {
	runClusterSoak(t, nodeKilled)
}

// TestSoakClusterNodeShutdown: cuts everywhere, and one node shuts down
// gracefully part way: its sessions are handed over, and nothing is lost.
func TestSoakClusterNodeShutdown(t *testing.T) {
	runClusterSoak(t, nodeShutdown)
}

func runClusterSoak(t *testing.T, fate string) {
	const chatEvery = 700 * time.Millisecond // by each client
	duration := clusterSoakDuration(t)
	logs := &logCounter{counts: map[string]*atomic.Int64{}}
	b := clustertest.StartBroker(t)
	opts := []broadcast.Option{
		broadcast.WithChatRate(1000, 1000),
		broadcast.WithWriteTimeout(2 * time.Second),
		broadcast.WithPingInterval(250 * time.Millisecond),
		broadcast.WithSessionTTL(time.Hour),
	}
	withLog := func(c *cluster.Config) { c.Logger = slog.New(logs) }
	var nodes []*clustertest.Node
	var addrs []string
	var hubs []*broadcast.Hub
	for _, name := range []string{"a", "b", "c"} {
		n := clustertest.StartNodeWith(t, b, name, withLog, opts...)
		nodes, addrs, hubs = append(nodes, n), append(addrs, n.Addr), append(hubs, n.Hub)
	}
	proxy, err := NewProxy(addrs, WithRetry(50), WithHold(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })

	run := newSoakRun(gapsAfterKill, true, clusterTransferLimit, proxy.Requests)
	// Every request through the proxy, each on a connection of its own: a
	// keep-alive connection would stay on one node.
	cr := startCrowd(t, run, crowdConfig{
		raw: 3, goClients: 8, streamURL: proxy.URL(), postURL: proxy.URL(),
		oneConnPerRequest: true, idle: time.Second, // ticks come every ~17 ms
	})

	start := time.Now()
	load, stopLoad := context.WithCancel(context.Background())
	var loadWG sync.WaitGroup
	defer func() { stopLoad(); loadWG.Wait() }()
	loadWG.Go(func() { cutter(load, proxy, [2]time.Duration{100 * time.Millisecond, 300 * time.Millisecond}, 11) })
	cr.load(load, &loadWG, clusterMinBulk, clusterMaxBulk, chatEvery, stallDiag(proxy, hubs...))

	// A session is on one node at a time: a take removes it from the old
	// node before the new one has it. Two hubs holding one session at once
	// is a split, whose two copies would number events apart.
	victim := nodes[1]
	var victimGone atomic.Bool // the victim's hub holds what it lost: skip it
	splits := &splitWatch{seen: map[string]string{}}
	sessions := cr.sessions()
	loadWG.Go(func() {
		for load.Err() == nil {
			for id, name := range sessions {
				var on []string
				for _, n := range nodes {
					if n == victim && victimGone.Load() {
						continue
					}
					if _, ok := n.Hub.Session(id); ok {
						on = append(on, n.Name())
					}
				}
				if len(on) > 1 {
					splits.note(name, fmt.Sprintf("%s at %s", strings.Join(on, "+"), time.Now().Format("15:04:05.000")))
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	time.Sleep(duration * 2 / 5)
	left := -1 // sessions the victim did not hand over
	var fateWG sync.WaitGroup
	defer fateWG.Wait() // before the cleanups kill the nodes
	run.nodeLost.Store(true)
	victimGone.Store(true)
	switch fate {
	case nodeKilled:
		run.killed.Store(time.Now().UnixNano())
		victim.Kill()
	case nodeShutdown:
		// Streams end with bye; the node answers hand-overs for 10 s.
		fateWG.Go(func() { left = victim.Shutdown(10 * time.Second) })
	}
	t.Logf("node %s %s at %v (%s)", victim.Name(), fate, time.Since(start).Round(time.Millisecond), time.Now().Format("15:04:05.000"))
	time.Sleep(duration - time.Since(start))
	stopLoad()
	loadWG.Wait() // every transfer asked for has ended
	ran := time.Since(start)

	// A last chat, from each raw client's session in turn: one may be stuck.
	var posters []chatPoster
	for _, c := range cr.raws {
		posters = append(posters, c.say)
	}
	cr.endChat(t, posters...)
	cr.stop()
	fateWG.Wait()

	total, chatsVerified := cr.report(t)
	accepted, unknown, refused, moving := run.chatCounts()
	cuts, by := cutCount(proxy)
	var perNode []string
	for i, ts := range proxy.Targets() {
		perNode = append(perNode, fmt.Sprintf("%s %d/%d", nodes[i].Name(), ts.Streams, ts.Requests))
	}
	t.Logf("cluster soak of %v, node %s %s: cuts %d (close %d, reset %d, stall %d); streams/other requests by node: %s; streams on another node than the last %d; takes %d, recoveries %d (%d by the node the record named); dials refused %d; chats accepted %d (503 while moving %d), no answer %d, refused %d; chat deliveries verified %d; transfers verified %d (%.1f MiB), failed by a gap %d; resumes %d, gaps %d",
		ran.Round(time.Millisecond), victim.Name(), fate, cuts, by[CutClose], by[CutReset], by[CutStall],
		strings.Join(perNode, ", "), proxy.Moves(), logs.get(msgTaken), logs.get(msgRecovered), logs.get(msgSelfClaim), proxy.Refused(),
		accepted, moving, unknown, refused, chatsVerified, total.Verified, float64(total.BulkBytes)/(1<<20), total.FailedByGap, total.Resumes, total.Gaps)
	t.Logf("recoveries: %s", logs.recoveries())
	defer func() {
		if t.Failed() {
			var names []string
			for id, name := range sessions {
				names = append(names, name+"="+broadcast.ShortID(id))
			}
			t.Logf("sessions: %s; the nodes' last %d log records:\n%s", strings.Join(names, " "), trailLen, logs.lastRecords())
		}
	}()
	for name, where := range splits.all() {
		t.Errorf("%s: the session was on two nodes at once (%s)", name, where)
	}
	// The soak proved something only if these happened.
	if logs.get(msgTaken) == 0 {
		t.Error("no session moved between nodes")
	}
	if accepted < 10 {
		t.Errorf("only %d chats accepted", accepted)
	}
	switch fate {
	case nodeKilled:
		if logs.get(msgRecovered) == 0 {
			t.Error("no session was recovered from the killed node")
		}
	case nodeShutdown:
		if left != 0 {
			t.Errorf("%d sessions left on the node shut down after its hand-over time", left)
		}
	}
}

// The messages of pkg/cluster the soak counts.
const (
	msgTaken     = "session taken over"
	msgRecovered = "session recovered from a lost node"
)

// msgSelfClaim counts recoveries of a session whose record named the
// recovering node itself: no node died, the node had handed it over.
const msgSelfClaim = "recovered by the node its record named"

// A logCounter is a slog.Handler that counts records by message, to learn
// how often the nodes moved and recovered sessions.
type logCounter struct {
	mu     sync.Mutex
	counts map[string]*atomic.Int64
	node   string // the "node" attribute of a derived handler
	parent *logCounter
	// recovered lists the recoveries: when, by which node, from which.
	recovered []string
	// trail is the last trailLen records, for a diagnosis.
	trail []string
}

const trailLen = 300

func (l *logCounter) Enabled(context.Context, slog.Level) bool { return true }

func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	root := l
	if l.parent != nil {
		root = l.parent
	}
	root.count(r.Message)
	line := fmt.Sprintf("%s %s: %s", r.Time.Format("15:04:05.000"), l.node, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		line += " " + a.String()
		return true
	})
	root.mu.Lock()
	if len(root.trail) == trailLen {
		root.trail = root.trail[1:]
	}
	root.trail = append(root.trail, line)
	root.mu.Unlock()
	if r.Message == msgRecovered {
		lost := ""
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "lost" {
				lost = a.Value.String()
			}
			return true
		})
		if lost == l.node {
			root.count(msgSelfClaim)
		}
		root.mu.Lock()
		root.recovered = append(root.recovered, fmt.Sprintf("%s by %s from %s", r.Time.Format("15:04:05.000"), l.node, lost))
		root.mu.Unlock()
	}
	return nil
}

func (l *logCounter) count(msg string) {
	l.mu.Lock()
	c, ok := l.counts[msg]
	if !ok {
		c = &atomic.Int64{}
		l.counts[msg] = c
	}
	l.mu.Unlock()
	c.Add(1)
}

func (l *logCounter) WithAttrs(as []slog.Attr) slog.Handler {
	d := &logCounter{node: l.node, parent: l}
	if l.parent != nil {
		d.parent = l.parent
	}
	for _, a := range as {
		if a.Key == "node" {
			d.node = a.Value.String()
		}
	}
	return d
}

func (l *logCounter) WithGroup(string) slog.Handler { return l }

func (l *logCounter) get(msg string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.counts[msg]; ok {
		return c.Load()
	}
	return 0
}

func (l *logCounter) recoveries() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.recovered, "; ")
}

func (l *logCounter) lastRecords() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.trail, "\n")
}

// A splitWatch keeps the first split seen of each session.
type splitWatch struct {
	mu   sync.Mutex
	seen map[string]string // client → where and when
}

func (w *splitWatch) note(name, where string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.seen[name]; !ok {
		w.seen[name] = where
	}
}

func (w *splitWatch) all() map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.seen)
}
