package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// wait bounds every "eventually". It is generous on purpose: the soak runs
// under -race on a busy 2-core machine.
const wait = 20 * time.Second

// A transfer has stalled when it has not moved for stallTime while at least
// stallEvents other events arrived on its stream: the stream flows but the
// transfer does not (chunks are made whenever the stream has caught up, so a
// flowing stream carries them). A busy machine slows both alike and is no
// stall. One that has not ended in stallLimit is reported all the same.
const (
	stallTime   = wait
	stallEvents = 2000
	stallLimit  = 90 * time.Second
)

// awaitTransfer polls until done() and returns "", or returns why it gave up:
// progress() (chunks or bytes so far) did not move for stallTime while
// events() (the stream's event count) grew by stallEvents, or stallLimit
// passed.
func awaitTransfer(notify <-chan struct{}, done func() bool, progress func() int64, events func() int) string {
	start := time.Now()
	moved, p, e := start, progress(), events()
	for !done() {
		select {
		case <-notify:
		case <-time.After(50 * time.Millisecond):
		}
		now := time.Now()
		if np := progress(); np != p {
			moved, p, e = now, np, events()
			continue
		}
		if n := events() - e; now.Sub(moved) >= stallTime && n >= stallEvents {
			return fmt.Sprintf("no progress in %v while %d other events arrived", now.Sub(moved).Round(time.Millisecond), n)
		}
		if now.Sub(start) >= stallLimit {
			return fmt.Sprintf("no end in %v (the machine is very slow, or it stalled)", stallLimit)
		}
	}
	return ""
}

var allChannels = []string{"one", "two", "three"}

// fastChannels returns the default channels ticking rate times a second.
func fastChannels(rate float64) []broadcast.ChannelConfig {
	cs := broadcast.DefaultChannels()
	for i := range cs {
		cs[i].Rate = rate
	}
	return cs
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// A soakConfig says who takes part in a soak and what the server keeps.
type soakConfig struct {
	raw, goClients   int
	serverOpts       []broadcast.Option // after the soak's own
	gapsAllowed      bool               // the replay window is small: gaps may come
	minBulk, maxBulk int64              // transfer sizes, bytes
	cutEvery         [2]time.Duration   // a cut every this long, at random between
	duration         time.Duration
}

// participant is what the soak asks of both kinds of client.
type participant interface {
	chatIDs() []int64
	stats() clientStats
	violations() []string
}

// runSoak runs one soak: a real server with three channels ticking 75 times
// a second, a chatter posting 20 chats a second straight to it, and the
// clients behind a Proxy that cuts a stream every few hundred milliseconds
// (closing it, resetting it, or stalling it silently), while each client
// asks for transfers of a few MiB one after another. When the time is up,
// the load stops, every transfer under way ends, a last chat marks the end,
// and each client's record is checked: see rawClient and goClient.
func runSoak(t *testing.T, cfg soakConfig) {
	opts := append([]broadcast.Option{
		broadcast.WithChannels(fastChannels(75)...),
		broadcast.WithChatRate(1000, 1000),
		broadcast.WithWriteTimeout(2 * time.Second),
		broadcast.WithPingInterval(250 * time.Millisecond),
		// The chatter never streams; a long soak must not lose its session.
		broadcast.WithSessionTTL(time.Hour),
	}, cfg.serverOpts...)
	srv := testserver.Start(t, opts...)
	proxy, err := NewProxy(srv.Addr, WithRetry(50), WithHold(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	streamTr := &http.Transport{MaxIdleConnsPerHost: 64}
	postTr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(streamTr.CloseIdleConnections)
	t.Cleanup(postTr.CloseIdleConnections)
	streamHC, postHC := &http.Client{Transport: streamTr}, &http.Client{Transport: postTr, Timeout: wait}

	const idle = time.Second // ticks come every few ms: a second of silence is a dead line
	setup, cancelSetup := context.WithTimeout(context.Background(), wait)
	defer cancelSetup()
	var (
		raws  []*rawClient
		gos   []*goClient
		all   []participant
		names []string
	)
	for i := range cfg.raw {
		c := newRawClient(fmt.Sprintf("raw%d", i), proxy.URL(), srv.URL, streamHC, postHC, idle)
		if err := c.open(setup, allChannels); err != nil {
			t.Fatal(err)
		}
		raws, all, names = append(raws, c), append(all, c), append(names, c.name)
	}
	for i := range cfg.goClients {
		g, err := newGoClient(setup, fmt.Sprintf("go%d", i), proxy.URL(), idle, allChannels)
		if err != nil {
			t.Fatal(err)
		}
		g.requests = proxy.Requests
		gos, all, names = append(gos, g), append(all, g), append(names, g.name)
	}

	clients, stopClients := context.WithCancel(context.Background())
	var clientWG sync.WaitGroup
	defer func() { stopClients(); clientWG.Wait() }()
	for i, c := range raws {
		clientWG.Go(func() { c.run(clients, uint64(i)) })
	}
	for _, g := range gos {
		clientWG.Go(func() { g.run(clients) })
	}
	eventually(t, "every client connected", func() bool {
		for _, p := range all {
			if p.stats().Connects == 0 {
				return false
			}
		}
		return true
	})

	diag := func() string {
		s := srv.Hub.Snapshot()
		return fmt.Sprintf("server: streams %d, bulk started %d done %d chunks %d, gaps %d, resumes %d; proxy streams %d; goroutines in %s",
			s.Streams, s.BulkStarted, s.BulkDone, s.BulkChunks, s.Gaps, s.Resumes, proxy.Streams(), dumpGoroutines())
	}

	// The load.
	load, stopLoad := context.WithCancel(context.Background())
	var loadWG sync.WaitGroup
	chatter := &chatter{hc: postHC, base: srv.URL}
	if err := chatter.open(setup); err != nil {
		t.Fatal(err)
	}
	loadWG.Go(func() { chatter.run(load, 50*time.Millisecond) })
	loadWG.Go(func() { cutter(load, proxy, cfg.cutEvery) })
	for i, c := range raws {
		loadWG.Go(func() { c.bulkLoop(load, uint64(100+i), cfg.minBulk, cfg.maxBulk, diag) })
	}
	for i, g := range gos {
		loadWG.Go(func() { g.bulkLoop(load, uint64(200+i), cfg.minBulk, cfg.maxBulk, diag) })
	}
	start := time.Now()
	time.Sleep(cfg.duration)
	stopLoad()
	loadWG.Wait() // every transfer asked for has ended (or stalled)
	ran := time.Since(start)

	// The end: a last chat that every client must get.
	end, err := chatter.say(setupCtx(t), "end")
	if err != nil {
		t.Errorf("the last chat: %v", err)
	}
	waitDeadline := time.Now().Add(wait)
	for i, p := range all {
		for err == nil && !slices.Contains(p.chatIDs(), end) {
			if time.Now().After(waitDeadline) {
				t.Errorf("%s: the last chat (%d) did not arrive in %v; %s", names[i], end, wait, diag())
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	stopClients()
	clientWG.Wait()

	// The record.
	accepted, err := chatter.accepted()
	if err != nil {
		t.Fatalf("chatter: a chat POST failed, so the chats sent are unknown: %v", err)
	}
	accepted = append(accepted, end)
	var total clientStats
	for i, p := range all {
		if c, ok := p.(*rawClient); ok {
			c.reconcile()
		}
		st := p.stats()
		total = total.add(st)
		t.Logf("%-5s connects %3d (resumed %3d, self-cut %2d), events %6d, ticks %6d, chats %4d, gaps %2d (missed %5d), transfers verified %3d, failed by a gap %2d, stalled %d, %.1f MiB",
			names[i], st.Connects, st.Resumes, st.SelfCuts, st.Events, st.Ticks, st.Chats, st.Gaps, st.Missed, st.Verified, st.FailedByGap, st.Stalled, float64(st.BulkBytes)/(1<<20))
		errs := p.violations()
		if st.Gaps > 0 && !cfg.gapsAllowed {
			errs = append(errs, fmt.Sprintf("%d gaps (%d events missed) though every cut was far shorter than the replay window", st.Gaps, st.Missed))
		}
		errs = append(errs, checkChats(p.chatIDs(), accepted, st.Gaps > 0)...)
		for j, e := range errs {
			if j == 20 {
				t.Errorf("%s: … and %d more", names[i], len(errs)-j)
				break
			}
			t.Errorf("%s: %s", names[i], e)
		}
	}
	cuts := proxy.Cuts()
	snap := srv.Hub.Snapshot()
	t.Logf("soak of %v: %d cuts (close %d, reset %d, stall %d); %d chats; %d transfers verified, %d failed by a gap, %.1f MiB verified; server: %d events, %.1f MiB out, %d resumes, %d gaps, %d transfers done of %d",
		ran.Round(time.Millisecond), cuts[CutClose]+cuts[CutReset]+cuts[CutStall], cuts[CutClose], cuts[CutReset], cuts[CutStall],
		len(accepted), total.Verified, total.FailedByGap, float64(total.BulkBytes)/(1<<20),
		snap.Events, float64(snap.BytesOut)/(1<<20), snap.Resumes, snap.Gaps, snap.BulkDone, snap.BulkStarted)
	if total.Verified == 0 {
		t.Error("no transfer was verified: the soak proved nothing about bulk")
	}
	if c := cuts[CutClose] + cuts[CutReset] + cuts[CutStall]; c < int64(len(all)) {
		t.Errorf("only %d cuts for %d clients: the soak proved little about resuming", c, len(all))
	}
}

// dumpGoroutines writes every goroutine's stack to a file that outlives the
// test, for the diagnosis of a stall, and returns its name.
func dumpGoroutines() string {
	f, err := os.CreateTemp("", "xhrsse-soak-stall-*.txt")
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	fmt.Fprintf(f, "%s\n", time.Now().Format("15:04:05.000"))
	pprof.Lookup("goroutine").WriteTo(f, 2)
	return f.Name()
}

// checkChats compares the live chats a client got with those the chatter
// had accepted, all posted after the client's session existed: without a
// gap, every one, in order; with gaps, some may be missing, never invented.
func checkChats(got, accepted []int64, gaps bool) []string {
	var errs []string
	for _, id := range got {
		if !slices.Contains(accepted, id) {
			errs = append(errs, fmt.Sprintf("chat %d was never accepted", id))
		}
	}
	if !gaps && !slices.Equal(got, accepted) {
		missing := 0
		for _, id := range accepted {
			if !slices.Contains(got, id) {
				missing++
			}
		}
		errs = append(errs, fmt.Sprintf("got %d chats, %d accepted, %d missing without a gap", len(got), len(accepted), missing))
	}
	return errs
}

func (a clientStats) add(b clientStats) clientStats {
	a.Connects += b.Connects
	a.Resumes += b.Resumes
	a.SelfCuts += b.SelfCuts
	a.Events += b.Events
	a.Ticks += b.Ticks
	a.Chats += b.Chats
	a.Gaps += b.Gaps
	a.Missed += b.Missed
	a.Verified += b.Verified
	a.FailedByGap += b.FailedByGap
	a.Stalled += b.Stalled
	a.BulkBytes += b.BulkBytes
	return a
}

// cutter cuts a random stream every every[0] to every[1], by a random one of
// the three ways, until ctx ends. Runs in its own goroutine.
func cutter(ctx context.Context, p *Proxy, every [2]time.Duration) {
	rng := rand.New(rand.NewPCG(7, 7))
	for {
		d := every[0] + time.Duration(rng.Int64N(int64(every[1]-every[0])+1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		// Stalls are the costliest (a second of silence each): fewer of them.
		how := []Cut{CutClose, CutClose, CutReset, CutReset, CutStall}[rng.IntN(5)]
		p.CutOne(rng, how)
	}
}

// A chatter posts chats straight to the server (never cut) and keeps the ids
// of those accepted.
type chatter struct {
	hc   *http.Client
	base string
	sid  string

	mu  sync.Mutex
	ids []int64
	err error
}

func (c *chatter) open(ctx context.Context) error {
	var created protocol.SessionCreated
	if err := postJSON(ctx, c.hc, c.base+"/sessions", "", &created); err != nil {
		return fmt.Errorf("chatter: %w", err)
	}
	c.sid = created.Session
	return nil
}

// say posts one chat and returns its id.
func (c *chatter) say(ctx context.Context, text string) (int64, error) {
	var acc protocol.ChatAccepted
	body, _ := json.Marshal(protocol.ChatPost{Name: "chatter", Text: text})
	if err := postJSON(ctx, c.hc, c.base+"/sessions/"+c.sid+"/chat", string(body), &acc); err != nil {
		return 0, err
	}
	return acc.ID, nil
}

// run chats every period until ctx ends. Runs in its own goroutine.
func (c *chatter) run(ctx context.Context, period time.Duration) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// Not cancelled with ctx: a chat cut off mid-POST might have gone
		// out without its id being known.
		pctx, cancel := context.WithTimeout(context.Background(), wait)
		id, err := c.say(pctx, fmt.Sprintf("soak %d <b>&amp;\x1b[31m", n))
		cancel()
		c.mu.Lock()
		switch {
		case err == nil:
			c.ids = append(c.ids, id)
		case c.err == nil:
			c.err = err
		}
		c.mu.Unlock()
	}
}

// accepted returns the ids of the chats accepted so far and the first
// error: a chat whose POST failed might still have gone out, so the soak
// cannot check chats then.
func (c *chatter) accepted() ([]int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.ids), c.err
}

func setupCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds, failing the test after wait.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSoakRaw: streams read by a bare net/http + protocol.Decoder client,
// cut at random (closed by the client, closed or reset by the proxy, or
// stalled silently) while channels tick, chat flows and transfers of a few
// MiB run: every client ends with every event id in order, no duplicate, no
// hole, every chat, and every transfer verified by sha256.
func TestSoakRaw(t *testing.T) {
	runSoak(t, soakConfig{
		raw: 4, minBulk: 256 << 10, maxBulk: 3 << 20,
		cutEvery: [2]time.Duration{100 * time.Millisecond, 500 * time.Millisecond},
		duration: soakDuration(t),
	})
}

// TestSoakClient: the same with pkg/client's Session.Run doing the resuming
// (Last-Event-ID, retry, idle timeout), as the TUI does.
func TestSoakClient(t *testing.T) {
	runSoak(t, soakConfig{
		goClients: 4, minBulk: 256 << 10, maxBulk: 3 << 20,
		cutEvery: [2]time.Duration{100 * time.Millisecond, 500 * time.Millisecond},
		duration: soakDuration(t),
	})
}

// TestSoakGap: with a replay window of 200 events (a second of ticks),
// stalls and slow reads reach past it: the loss is announced by gap events
// whose ids account for every missed event, a transfer caught in one fails
// explicitly, and nothing stalls. Both kinds of client take part.
func TestSoakGap(t *testing.T) {
	runSoak(t, soakConfig{
		raw: 2, goClients: 2, minBulk: 256 << 10, maxBulk: 2 << 20,
		serverOpts:  []broadcast.Option{broadcast.WithReplay(200, 0, 200)},
		gapsAllowed: true,
		cutEvery:    [2]time.Duration{100 * time.Millisecond, 400 * time.Millisecond},
		duration:    soakDuration(t) / 2,
	})
}
