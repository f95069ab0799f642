package soak

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/cluster"
	"github.com/xhrsse/xhrsse/pkg/protocol"
	"github.com/xhrsse/xhrsse/pkg/server"
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

// TestSoakClusterNodeKilled: cuts everywhere, and one node crashes part
// way: its sessions come back elsewhere after one gap each, and nothing
// else is lost.
func TestSoakClusterNodeKilled(t *testing.T) {
	runClusterSoak(t, clusterFault{name: "node b killed", inject: func(t *testing.T, env *clusterEnv) {
		env.run.nodeLost.Store(true)
		env.lost.Store(env.nodes[1])
		env.run.killed.Store(time.Now().UnixNano())
		env.mark("node b killed")
		env.nodes[1].Kill()
	}, check: func(t *testing.T, env *clusterEnv) {
		if env.logs.get(msgRecovered) == 0 {
			t.Error("no session was recovered from the killed node")
		}
	}})
}

// TestSoakClusterNodeShutdown: cuts everywhere, and one node shuts down
// gracefully part way: its sessions are handed over, and nothing is lost.
func TestSoakClusterNodeShutdown(t *testing.T) {
	left := -1 // sessions the node did not hand over
	runClusterSoak(t, clusterFault{name: "node b shut down", inject: func(t *testing.T, env *clusterEnv) {
		env.run.nodeLost.Store(true)
		env.lost.Store(env.nodes[1])
		env.mark("node b shut down")
		// Streams end with bye; the node answers hand-overs for 10 s.
		env.bg.Go(func() { left = env.nodes[1].Shutdown(10 * time.Second) })
	}, check: func(t *testing.T, env *clusterEnv) {
		if left != 0 {
			t.Errorf("%d sessions left on the node shut down after its hand-over time", left)
		}
	}})
}

// A clusterFault is what befalls a cluster soak part way through.
type clusterFault struct {
	name string
	// brokers: three clustered brokers (streams and buckets on all three)
	// instead of one.
	brokers bool
	// killable: with brokers, b1 runs in a child process, which can be
	// killed with SIGKILL (clustertest.StartBrokersWithChild).
	killable bool
	// linked: the last node reaches the brokers through a Proxy
	// (clusterEnv.link), which can cut it off from all of them.
	linked bool
	// inject brings the fault about, at 2/5 of the run; it may take its
	// time (a broker stopped and started again), and marks each moment
	// whose recovery is measured (clusterEnv.mark).
	inject func(t *testing.T, env *clusterEnv)
	// check fails the test for what the fault's promise rules out, after
	// the run; nil checks nothing more.
	check func(t *testing.T, env *clusterEnv)
}

// A clusterEnv is one cluster soak's parts, for its fault.
type clusterEnv struct {
	run     *soakRun
	single  *clustertest.Broker  // without clusterFault.brokers
	brokers *clustertest.Brokers // with it
	nodes   []*clustertest.Node
	front   *Proxy // the clients' balancer over the nodes
	link    *Proxy // between the last node and the brokers, if linked
	logs    *logCounter
	crowd   *crowd
	lost    atomic.Pointer[clustertest.Node] // killed or shut down: its hub is not looked at
	bg      sync.WaitGroup                   // what the fault leaves running; waited for before the report

	load       context.Context // ends with the load
	recoveries recoveries
}

// mark notes a moment of the fault whose recovery is measured: how long
// until each client got its next event, its next chat and its next
// published event.
func (env *clusterEnv) mark(what string) {
	env.recoveries.watch(env.load, &env.bg, env.crowd, what)
}

func runClusterSoak(t *testing.T, fault clusterFault) {
	const chatEvery = 700 * time.Millisecond // by each client
	duration := clusterSoakDuration(t)
	env := &clusterEnv{logs: &logCounter{counts: map[string]*atomic.Int64{}}}
	logs := env.logs
	var nats clustertest.NATS
	if fault.brokers {
		if fault.killable {
			env.brokers = clustertest.StartBrokersWithChild(t)
		} else {
			env.brokers = clustertest.StartBrokers(t)
		}
		nats = env.brokers
	} else {
		env.single = clustertest.StartBroker(t)
		nats = env.single
	}
	opts := []broadcast.Option{
		broadcast.WithChatRate(1000, 1000),
		broadcast.WithWriteTimeout(2 * time.Second),
		broadcast.WithPingInterval(250 * time.Millisecond),
		broadcast.WithSessionTTL(time.Hour),
	}
	// Beside the ticking channels, a published one, fed by the publishers.
	chans := append(broadcast.DefaultChannelsAt(clustertest.ChannelRate),
		broadcast.ChannelConfig{Name: pubChannel, Title: "Log", Published: true})
	described, err := broadcast.Describe(chans)
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, broadcast.WithChannels(chans...))
	scfg := server.Config{PublishTokens: []string{pubToken}, PublishRate: 1e6}
	withLog := func(c *cluster.Config) { c.Logger, c.Channels = slog.New(logs), described }
	var addrs []string
	var hubs []*broadcast.Hub
	for i, name := range []string{"a", "b", "c"} {
		with := withLog
		if fault.linked && i == 2 {
			var targets []string
			for _, b := range env.brokers.All() {
				targets = append(targets, strings.TrimPrefix(b.URL(), "nats://"))
			}
			link, err := NewProxy(targets, WithHold(linkStallFor))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { link.Close() })
			env.link = link
			with = func(c *cluster.Config) {
				withLog(c)
				c.URL = "nats://" + strings.TrimPrefix(link.URL(), "http://")
			}
		}
		n := clustertest.StartNodeServer(t, nats, name, with, scfg, opts...)
		env.nodes, addrs, hubs = append(env.nodes, n), append(addrs, n.Addr), append(hubs, n.Hub)
	}
	nodes := env.nodes
	proxy, err := NewProxy(addrs, WithRetry(50), WithHold(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	env.front = proxy

	run := newSoakRun(gapsAfterKill, true, clusterTransferLimit, proxy.Requests)
	env.run = run
	// Every request through the proxy, each on a connection of its own: a
	// keep-alive connection would stay on one node.
	cr := startCrowd(t, run, crowdConfig{
		raw: 3, goClients: 8, streamURL: proxy.URL(), postURL: proxy.URL(),
		oneConnPerRequest: true, idle: time.Second, // ticks come every ~17 ms
		channels: append(slices.Clone(allChannels), pubChannel),
	})
	env.crowd = cr

	start := time.Now()
	load, stopLoad := context.WithCancel(context.Background())
	env.load = load
	var loadWG sync.WaitGroup
	defer func() { stopLoad(); loadWG.Wait() }()
	defer env.bg.Wait() // before the cleanups kill the nodes
	loadWG.Go(func() { cutter(load, proxy, [2]time.Duration{100 * time.Millisecond, 300 * time.Millisecond}, 11) })
	cr.load(load, &loadWG, clusterMinBulk, clusterMaxBulk, chatEvery, stallDiag(proxy, hubs...))
	for i, kind := range []string{"json", "text"} {
		loadWG.Go(func() { run.publishLoop(load, kind, env.nodeURLs, uint64(i)) })
	}

	// A session is on one node at a time: a take removes it from the old
	// node before the new one has it. Two hubs holding one session at once
	// is a split, whose two copies would number events apart.
	splits := &splitWatch{seen: map[string]string{}}
	sessions := cr.sessions()
	loadWG.Go(func() {
		for load.Err() == nil {
			for id, name := range sessions {
				if on := env.holders(id); len(on) > 1 {
					splits.note(name, fmt.Sprintf("%s at %s", strings.Join(on, "+"), time.Now().Format("15:04:05.000")))
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	time.Sleep(duration * 2 / 5)
	t.Logf("%s at %v (%s)", fault.name, time.Since(start).Round(time.Millisecond), time.Now().Format("15:04:05.000"))
	fault.inject(t, env)
	// The load goes on for the rest of the run, and for at least a few
	// seconds after the fault, to see everybody hear again.
	time.Sleep(max(duration-time.Since(start), 4*time.Second))
	stopLoad()
	loadWG.Wait() // every transfer asked for has ended
	ran := time.Since(start)

	// A last chat, from each raw client's session in turn: one may be stuck.
	var posters []chatPoster
	for _, c := range cr.raws {
		posters = append(posters, c.say)
	}
	cr.endChat(t, posters...)
	cr.endPublish(t, env.nodeURLs())
	cr.stop()
	env.bg.Wait()

	// Checked before the report, which fails the test for what they find.
	pubsVerified := 0
	for _, m := range cr.all {
		pubsVerified += m.record().checkPublished()
	}
	total, chatsVerified := cr.report(t)
	cr.checkPubOrder(t)
	pubAccepted, pubUnknown, pubAnswers, pubErrs := run.pubCounts()
	failAll(t, "publish", pubErrs)
	accepted, unknown, refused, moving := run.chatCounts()
	cuts, by := cutCount(proxy)
	var perNode []string
	for i, ts := range proxy.Targets() {
		perNode = append(perNode, fmt.Sprintf("%s %d/%d", nodes[i].Name(), ts.Streams, ts.Requests))
	}
	t.Logf("cluster soak of %v, %s: cuts %d (close %d, reset %d, stall %d); streams/other requests by node: %s; streams on another node than the last %d; takes %d, recoveries %d (%d by the node the record named); dials refused %d; chats accepted %d (503 while moving %d), no answer %d, refused %d; chat deliveries verified %d; transfers verified %d (%.1f MiB), failed by a gap %d; resumes %d, gaps %d",
		ran.Round(time.Millisecond), fault.name, cuts, by[CutClose], by[CutReset], by[CutStall],
		strings.Join(perNode, ", "), proxy.Moves(), logs.get(msgTaken), logs.get(msgRecovered), logs.get(msgSelfClaim), proxy.Refused(),
		accepted, moving, unknown, refused, chatsVerified, total.Verified, float64(total.BulkBytes)/(1<<20), total.FailedByGap, total.Resumes, total.Gaps)
	t.Logf("published events acknowledged %d, of unknown fate %d; publish requests by publisher and status: %s; published deliveries verified %d",
		pubAccepted, pubUnknown, pubAnswers, pubsVerified)
	t.Logf("recoveries: %s", logs.recoveries())
	t.Logf("the nodes' broker connections:\n%s", logs.linkRecords())
	env.recoveries.report(t, cr, logs.sessionRecords)
	defer func() {
		if t.Failed() {
			var names []string
			for id, name := range sessions {
				names = append(names, name+"="+protocol.ShortID(id))
			}
			t.Logf("sessions: %s; the nodes' last %d log records:\n%s", strings.Join(names, " "), trailLen, logs.lastRecords())
		}
	}()
	for name, where := range splits.all() {
		t.Errorf("%s: the session was on two nodes at once (%s)", name, where)
	}
	// Afterwards every session the clients still have is on one node.
	for _, m := range cr.all {
		if tl := m.record(); !tl.isLost() {
			if on := env.holders(tl.sid); len(on) != 1 {
				t.Errorf("%s: the session is on %d nodes after the run (%v)", tl.name, len(on), on)
			}
		}
	}
	// The soak proved something only if these happened.
	if logs.get(msgTaken) == 0 {
		t.Error("no session moved between nodes")
	}
	if accepted < 10 {
		t.Errorf("only %d chats accepted", accepted)
	}
	if pubAccepted < 10 {
		t.Errorf("only %d published events acknowledged", pubAccepted)
	}
	if fault.check != nil {
		fault.check(t, env)
	}
}

// nodeURLs are the URLs of the nodes publishers may POST to: all but the
// one lost.
func (env *clusterEnv) nodeURLs() []string {
	var urls []string
	for _, n := range env.nodes {
		if n != env.lost.Load() {
			urls = append(urls, n.URL)
		}
	}
	return urls
}

// holders names the nodes whose hubs hold session id, the lost node aside
// (its hub keeps what it lost).
func (env *clusterEnv) holders(id string) []string {
	var on []string
	for _, n := range env.nodes {
		if n == env.lost.Load() {
			continue
		}
		if _, ok := n.Hub.Session(id); ok {
			on = append(on, n.Name())
		}
	}
	return on
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
	// links lists the nodes' broker connections lost and back, and their
	// sessions parked and settled: where a fault's seconds went.
	links []string
	// bySession keeps, by a session's short id, the last records that
	// name it: what its nodes did while its client heard nothing.
	bySession map[string][]string
}

// sessionTrailLen bounds bySession's records per session.
const sessionTrailLen = 60

// linkMsgs are pkg/cluster's messages about a node's broker connection.
var linkMsgs = map[string]bool{"broker lost": true, "broker back": true, msgParked: true, "broker back: sessions settled": true}

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
	if linkMsgs[r.Message] {
		root.links = append(root.links, line)
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "session" {
			if root.bySession == nil {
				root.bySession = map[string][]string{}
			}
			sid := a.Value.String()
			if len(root.bySession[sid]) == sessionTrailLen {
				root.bySession[sid] = root.bySession[sid][1:]
			}
			root.bySession[sid] = append(root.bySession[sid], line)
		}
		return true
	})
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

// sessionRecords lists the nodes' records naming session sid from..to
// (and a second after).
func (l *logCounter) sessionRecords(sid string, from, to time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lo, hi := from.Format("15:04:05.000"), to.Add(time.Second).Format("15:04:05.000")
	var b strings.Builder
	for _, r := range l.bySession[protocol.ShortID(sid)] {
		if r[:len(lo)] >= lo && r[:len(lo)] <= hi {
			b.WriteString("  " + r + "\n")
		}
	}
	return b.String()
}

func (l *logCounter) linkRecords() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.links, "\n")
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
