package soak

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
)

// wait bounds every "eventually". It is generous on purpose: the soak runs
// under -race on a busy 2-core machine.
const wait = 20 * time.Second

// stallLimit bounds one transfer of the single-server soak, of a few MiB.
const stallLimit = 90 * time.Second

// fastChannels returns the default channels ticking rate times a second.
func fastChannels(rate float64) []broadcast.ChannelConfig {
	cs := broadcast.DefaultChannels()
	for i := range cs {
		cs[i].Rate = rate
	}
	return cs
}

// A soakConfig says who takes part in a soak and what the server keeps.
type soakConfig struct {
	raw, goClients   int
	serverOpts       []broadcast.Option // after the soak's own
	gaps             gapRule
	minBulk, maxBulk int64            // transfer sizes, bytes
	cutEvery         [2]time.Duration // a cut every this long, at random between
	duration         time.Duration
}

// runSoak runs one soak: a real server with three channels ticking 75 times
// a second, a chatter posting 20 chats a second straight to it, and the
// clients behind a Proxy that cuts a stream every few hundred milliseconds
// (closing it, resetting it, or stalling it silently), while each client
// asks for transfers of a few MiB one after another. When the time is up,
// the load stops, every transfer under way ends, a last chat marks the end,
// and each client's record is checked: see rawClient, goClient and tally.
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
	proxy, err := NewProxy([]string{srv.Addr}, WithRetry(50), WithHold(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	run := newSoakRun(cfg.gaps, false, stallLimit, proxy.Requests)
	cr := startCrowd(t, run, crowdConfig{
		raw: cfg.raw, goClients: cfg.goClients,
		streamURL: proxy.URL(), postURL: srv.URL,
		idle: time.Second, // ticks come every few ms: a second of silence is a dead line
	})
	// The chatter POSTs straight to the server: a session that never streams.
	chatter := newRawClient("chatter", srv.URL, srv.URL, run, cr.posts, cr.posts, 0)
	if err := chatter.open(setupCtx(t), nil); err != nil {
		t.Fatal(err)
	}

	load, stopLoad := context.WithCancel(context.Background())
	var loadWG sync.WaitGroup
	defer func() { stopLoad(); loadWG.Wait() }()
	loadWG.Go(func() { run.chatLoop(load, chatter.name, 50*time.Millisecond, chatter.say) })
	loadWG.Go(func() { cutter(load, proxy, cfg.cutEvery, 7) })
	cr.load(load, &loadWG, cfg.minBulk, cfg.maxBulk, 0, stallDiag(proxy, srv.Hub))
	start := time.Now()
	time.Sleep(cfg.duration)
	stopLoad()
	loadWG.Wait() // every transfer asked for has ended (or stalled)
	ran := time.Since(start)

	cr.endChat(t, chatter.say)
	cr.stop()

	total, chats := cr.report(t)
	cuts, by := cutCount(proxy)
	accepted, _, _, _ := run.chatCounts()
	snap := srv.Hub.Snapshot()
	t.Logf("soak of %v: %d cuts (close %d, reset %d, stall %d); %d chats, %d deliveries verified; %d transfers verified, %d failed by a gap, %.1f MiB verified; server: %d events, %.1f MiB out, %d resumes, %d gaps, %d transfers done of %d",
		ran.Round(time.Millisecond), cuts, by[CutClose], by[CutReset], by[CutStall],
		accepted, chats, total.Verified, total.FailedByGap, float64(total.BulkBytes)/(1<<20),
		snap.Events, float64(snap.BytesOut)/(1<<20), snap.Resumes, snap.Gaps, snap.BulkDone, snap.BulkStarted)
	if cuts < int64(len(cr.all)) {
		t.Errorf("only %d cuts for %d clients: the soak proved little about resuming", cuts, len(cr.all))
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
// explicitly, a chat may be missing only where a gap fell, and nothing
// stalls. Both kinds of client take part.
func TestSoakGap(t *testing.T) {
	runSoak(t, soakConfig{
		raw: 2, goClients: 2, minBulk: 256 << 10, maxBulk: 2 << 20,
		serverOpts: []broadcast.Option{broadcast.WithReplay(200, 0, 200)},
		gaps:       gapsAnywhere,
		cutEvery:   [2]time.Duration{100 * time.Millisecond, 400 * time.Millisecond},
		duration:   soakDuration(t) / 2,
	})
}

func setupCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func ptr[T any](v T) *T { return &v }
