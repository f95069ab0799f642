package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
)

var allChannels = []string{"one", "two", "three"}

// A crowdConfig says who takes part in a soak and how they reach the
// servers.
type crowdConfig struct {
	raw, goClients int
	streamURL      string // where streams go: the proxy
	postURL        string // where the raw clients POST: the server, or the proxy
	// oneConnPerRequest gives every request a connection of its own, so
	// that a proxy with several targets spreads them.
	oneConnPerRequest bool
	idle              time.Duration // a stream silent this long is dead
	// channels are those every session tunes to; nil: allChannels.
	channels []string
}

// A member is what a soak asks of both kinds of client.
type member interface {
	record() *tally
	violations() []string
	say(ctx context.Context, text string) (int, int64, error)
	bulkLoop(load context.Context, seed uint64, minSize, maxSize int64, diag func() string)
}

func (t *tally) record() *tally { return t }

// A crowd is the clients of one soak, reading their streams from
// startCrowd until stop.
type crowd struct {
	run   *soakRun
	raws  []*rawClient
	gos   []*goClient
	all   []member
	stop  context.CancelFunc
	wg    sync.WaitGroup
	posts *http.Client // the raw clients'
}

// startCrowd opens every client's session (tuned to every channel), starts
// their streams and waits until each has connected: from then on each must
// get every chat. The test's cleanup stops them.
func startCrowd(t *testing.T, run *soakRun, cfg crowdConfig) *crowd {
	t.Helper()
	streamTr := &http.Transport{MaxIdleConnsPerHost: 64, DisableKeepAlives: cfg.oneConnPerRequest}
	postTr := &http.Transport{MaxIdleConnsPerHost: 64, DisableKeepAlives: cfg.oneConnPerRequest}
	t.Cleanup(streamTr.CloseIdleConnections)
	t.Cleanup(postTr.CloseIdleConnections)
	cr := &crowd{run: run, posts: &http.Client{Transport: postTr, Timeout: wait}}
	streamHC := &http.Client{Transport: streamTr}

	setup := setupCtx(t)
	channels := cfg.channels
	if channels == nil {
		channels = allChannels
	}
	for i := range cfg.raw {
		c := newRawClient(fmt.Sprintf("raw%d", i), cfg.streamURL, cfg.postURL, run, streamHC, cr.posts, cfg.idle)
		if err := c.open(setup, channels); err != nil {
			t.Fatal(err)
		}
		cr.raws, cr.all = append(cr.raws, c), append(cr.all, c)
	}
	for i := range cfg.goClients {
		g, err := newGoClient(setup, fmt.Sprintf("go%d", i), cfg.streamURL, run, cfg.idle, channels, cfg.oneConnPerRequest)
		if err != nil {
			t.Fatal(err)
		}
		cr.gos, cr.all = append(cr.gos, g), append(cr.all, g)
	}

	ctx, stop := context.WithCancel(context.Background())
	cr.stop = func() { stop(); cr.wg.Wait() }
	t.Cleanup(cr.stop)
	for i, c := range cr.raws {
		cr.wg.Go(func() { c.run(ctx, uint64(i)) })
	}
	for _, g := range cr.gos {
		cr.wg.Go(func() { g.run(ctx) })
	}
	ssetest.Eventually(t, "every client connected", func() bool {
		for _, m := range cr.all {
			if m.record().stats().Connects == 0 {
				return false
			}
		}
		return true
	})
	return cr
}

// load starts each client's transfers, of minBulk to maxBulk bytes one
// after another, and with chatEvery > 0 its chats, on wg until load ends.
func (cr *crowd) load(load context.Context, wg *sync.WaitGroup, minBulk, maxBulk int64, chatEvery time.Duration, diag func() string) {
	for i, m := range cr.all {
		wg.Go(func() { m.bulkLoop(load, uint64(100+i), minBulk, maxBulk, diag) })
		if chatEvery > 0 {
			wg.Go(func() { cr.run.chatLoop(load, m.record().name, chatEvery, m.say) })
		}
	}
}

// sessions maps each client's session to its name.
func (cr *crowd) sessions() map[string]string {
	out := make(map[string]string, len(cr.all))
	for _, m := range cr.all {
		out[m.record().sid] = m.record().name
	}
	return out
}

// endChat posts a last chat, by the first of posters that gets it accepted
// (one may be stuck), and waits until every client that has not lost its
// session got it.
func (cr *crowd) endChat(t *testing.T, posters ...chatPoster) {
	t.Helper()
	const text = "the end"
	try := 0
	ssetest.Eventually(t, "the last chat accepted", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		st, id, err := posters[try%len(posters)](ctx, text)
		try++
		cr.run.chatted("end", text, st, id, err)
		return st == http.StatusAccepted
	})
	deadline := time.Now().Add(wait)
	for _, m := range cr.all {
		for tl := m.record(); !tl.isLost() && !tl.seen(text); {
			if time.Now().After(deadline) {
				t.Errorf("%s: the last chat did not arrive in %v; trail:\n%s", tl.name, wait, tl.trailNow())
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// report logs each client's record and fails the test for every promise it
// saw broken, and for those of the chat POSTs; it returns the sum of the
// records and how many chat deliveries were verified.
func (cr *crowd) report(t *testing.T) (total clientStats, chatsVerified int) {
	t.Helper()
	for _, m := range cr.all {
		tl := m.record()
		verified := tl.checkChats()
		chatsVerified += verified
		st := tl.stats()
		total = total.add(st)
		t.Logf("%-4s connects %3d (resumed %3d, self-cut %2d), events %6d, ticks %6d, chats %4d (verified %4d), published %4d, gaps %2d (missed %5d), transfers verified %3d, failed by a gap %2d, stalled %d, unknown %d, %.1f MiB; bulk 503s %d",
			tl.name, st.Connects, st.Resumes, st.SelfCuts, st.Events, st.Ticks, st.Chats, verified, st.Published, st.Gaps, st.Missed,
			st.Verified, st.FailedByGap, st.Stalled, st.Unknown, float64(st.BulkBytes)/(1<<20), st.Bulk503)
		failAll(t, tl.name, m.violations())
	}
	_, errs := cr.run.acceptedIDs()
	failAll(t, "chats", errs)
	if total.Verified == 0 {
		t.Error("no transfer was verified: the soak proved nothing about bulk")
	}
	return total, chatsVerified
}

// failAll fails the test with the first 20 of errs.
func failAll(t *testing.T, who string, errs []string) {
	t.Helper()
	for i, e := range errs {
		if i == 20 {
			t.Errorf("%s: … and %d more", who, len(errs)-i)
			return
		}
		t.Errorf("%s: %s", who, e)
	}
}

// cutter cuts a random stream every every[0] to every[1], by a random one of
// the three ways, until ctx ends. Runs in its own goroutine.
func cutter(ctx context.Context, p *Proxy, every [2]time.Duration, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed))
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

// cutCount is the sum of the proxy's cuts.
func cutCount(p *Proxy) (all int64, by map[Cut]int64) {
	by = p.Cuts()
	for _, n := range by {
		all += n
	}
	return all, by
}

// stallDiag describes the servers and the proxy for a stall, and dumps
// every goroutine's stack to a file.
func stallDiag(p *Proxy, hubs ...*broadcast.Hub) func() string {
	return func() string {
		s := ""
		for i, h := range hubs {
			n := h.Snapshot()
			s += fmt.Sprintf("server %d: streams %d, bulk started %d done %d chunks %d, gaps %d, resumes %d; ", i, n.Streams, n.BulkStarted, n.BulkDone, n.BulkChunks, n.Gaps, n.Resumes)
		}
		return fmt.Sprintf("%sproxy streams %d; goroutines in %s", s, p.Streams(), dumpGoroutines())
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
