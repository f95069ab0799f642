package soak

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/xhrsse/xhrsse/pkg/client"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A goClient is a session of pkg/client, the package the TUI uses, with its
// automatic reconnect (Session.Run) doing all the resuming. The soak checks
// what Run delivers the way rawClient checks the wire, and each transfer
// through the writer Session.Bulk fills.
type goClient struct {
	*tally
	c     *client.Client
	s     *client.Session
	ended atomic.Bool // Run has returned

	// guarded by tally.mu
	states   []string                 // the last few State changes, for a diagnosis
	progress map[*client.Transfer]int // BulkProgress events delivered, by transfer under way
}

// connectWait is how long a go client waits for a stream's answer.
const connectWait = 5 * time.Second

// newGoClient opens a session through base. With oneConnPerRequest every
// request has a connection of its own, so that a balancer spreads them.
func newGoClient(ctx context.Context, name, base string, run *soakRun, idle time.Duration, channels []string, oneConnPerRequest bool) (*goClient, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = oneConnPerRequest
	c, err := client.New(base,
		// The Timeout bounds POSTs; pkg/client leaves it off its streams.
		client.WithHTTPClient(&http.Client{Transport: tr, Timeout: wait}),
		client.WithIdleTimeout(idle),
		// The idle limit is short to find a dead stream fast; the wait
		// for a stream's answer is a user's: a take of a moving session
		// may take seconds while brokers elect leaders, and a client that
		// gave up after the idle limit asked another node, which took the
		// session away again. Five seconds is the recovery promise.
		client.WithConnectTimeout(connectWait),
		client.WithMaxBackoff(500*time.Millisecond),
		client.WithLogger(discardLogger()),
	)
	if err != nil {
		return nil, err
	}
	s, err := c.Open(ctx, channels...)
	if err != nil {
		return nil, fmt.Errorf("%s: open: %w", name, err)
	}
	g := &goClient{tally: newTally(name, run), c: c, s: s}
	g.sid = s.ID()
	g.hint = g.redeliveryHint
	return g, nil
}

// say posts a chat on the client's session (a chatPoster).
func (g *goClient) say(ctx context.Context, text string) (int, int64, error) {
	id, err := g.s.Chat(ctx, g.name, text)
	var ae *client.APIError
	switch {
	case err == nil:
		return http.StatusAccepted, id, nil
	case errors.As(err, &ae):
		return ae.Status, 0, err
	}
	return 0, 0, err
}

// run runs Session.Run and checks every event it delivers until ctx ends.
// Runs in its own goroutine.
func (g *goClient) run(ctx context.Context) {
	events := make(chan client.Event, 64)
	done := make(chan error, 1)
	go func() { done <- g.s.Run(ctx, events) }()
	for {
		select {
		case ev := <-events:
			g.mu.Lock()
			g.take(ev)
			g.mu.Unlock()
		case err := <-done:
			g.ended.Store(true)
			if !errors.Is(err, context.Canceled) {
				g.mu.Lock()
				g.violation("Run returned %v; trail:\n%s", err, g.tail())
				g.lost = true // nothing more arrives: what it missed is not checked
				g.mu.Unlock()
			}
			g.c.CloseIdleConnections()
			return
		}
	}
}

// take checks one event. g.mu is held.
func (g *goClient) take(ev client.Event) {
	d := string(ev.Data)
	if len(d) > 60 {
		d = d[:60]
	}
	g.note(fmt.Sprintf("%d %s %s %s", ev.ID, ev.Kind, ev.Name, d))
	if ev.Kind == client.State {
		g.states = append(g.states, fmt.Sprintf("%s(%v)", ev.State, ev.Err))
		if len(g.states) > 8 {
			g.states = g.states[1:]
		}
		var ae *client.APIError
		switch ev.State {
		case client.Connected, client.Resumed:
			g.connected(ev.State == client.Resumed, "")
		case client.NewSession:
			g.sessionLost("%v", ev.Err)
		case client.Failed:
			g.violation("Run failed: %v; trail:\n%s", ev.Err, g.tail())
		case client.Reconnecting:
			if errors.As(ev.Err, &ae) && ae.Status == http.StatusServiceUnavailable {
				g.unavailable("GET /events")
			}
		}
		return
	}
	if ev.Kind == client.BulkDone && ev.Transfer.Err() != nil {
		// Run takes the rest of a failed transfer's events (its chunks and
		// bulk-end) without delivering them, so their ids are missing from
		// what it delivers: at most this many.
		t := ev.Transfer
		got, _ := t.Progress()
		g.absorbable += t.Accepted().Chunks - int(got/protocol.BulkChunkSize) + 1
	}
	// Events Run makes up (a transfer failed by a gap) have no id; bye
	// repeats the position.
	if ev.ID == 0 || ev.Kind == client.Bye {
		return
	}
	var missed uint64
	if ev.Kind == client.Gap {
		missed = max(ev.Gap.Missed, 1)
	}
	g.event(ev.ID, ev.Name, missed)
	switch ev.Kind {
	case client.BulkProgress:
		if g.progress == nil {
			g.progress = make(map[*client.Transfer]int)
		}
		g.progress[ev.Transfer]++
	case client.BulkDone:
		delete(g.progress, ev.Transfer)
	case client.Tick:
		if ev.Channel == pubChannel {
			g.published(ev.Text)
			break
		}
		g.st.Ticks++
	case client.Chat:
		g.chat(ev.Chat.ID, ev.Chat.Text, ev.Chat.History)
	case client.Other:
		g.violation("event Run could not read: %s %.80q (%v)", ev.Name, ev.Data, ev.Err)
	}
}

// redeliveryHint names a transfer that has taken more chunks than Run
// delivered BulkProgress events for: a chunk was fed, its delivery cut
// short, and its resend absorbed as a repeat. g.mu is held.
func (g *goClient) redeliveryHint() string {
	for t, n := range g.progress {
		if got, _ := t.Progress(); (got+protocol.BulkChunkSize-1)/protocol.BulkChunkSize > int64(n) && !isClosed(t.Done()) {
			return fmt.Sprintf(" (transfer %s has taken %d bytes but Run delivered %d chunks of it: pkg/client's redelivery bug, see TestClientRedeliversAfterCut)", t.ID(), got, n)
		}
	}
	return fmt.Sprintf("; client stats %+v", g.s.Stats())
}

// bulkLoop asks for transfers of random sizes one after another until load
// ends; each must end verified (the bytes written hash to what the POST
// announced) or failed by a gap that came after it was asked for, and must
// not stall (awaitTransfer). Runs in its own goroutine.
func (g *goClient) bulkLoop(load context.Context, seed uint64, minSize, maxSize int64, diag func() string) {
	rng := rand.New(rand.NewPCG(seed, 3))
	for load.Err() == nil {
		n := minSize + rng.Int64N(maxSize-minSize+1)
		gaps := g.s.Stats().Gaps
		h := sha256.New()
		// Not cancelled with load: a POST cut short has an unknown fate.
		pctx, cancel := context.WithTimeout(context.Background(), wait)
		t, err := g.s.Bulk(pctx, protocol.BulkPost{Bytes: &n}, h)
		cancel()
		if err != nil {
			st := 0
			if ae := (*client.APIError)(nil); errors.As(err, &ae) {
				st = ae.Status
			}
			g.mu.Lock()
			g.bulkRefused(st, err)
			g.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if isClosed(t.Done()) && errors.Is(t.Err(), client.ErrChunksLost) {
			// Failed as it was answered (a gap came while the POST was
			// out): Run takes whatever of it comes without delivering it,
			// and no BulkDone says so (take).
			g.mu.Lock()
			g.absorbable += t.Accepted().Chunks + 1
			g.mu.Unlock()
		}
		why := awaitTransfer(t.Done(), g.shared.transferLimit,
			// Done, or never will be: Run has returned.
			func() bool { return isClosed(t.Done()) || g.ended.Load() },
			func() int64 { got, _ := t.Progress(); return got },
			func() int { g.mu.Lock(); defer g.mu.Unlock(); return g.st.Events })
		if !isClosed(t.Done()) && g.ended.Load() {
			return // Run returned: reported as such
		}
		got, total := t.Progress()
		e := transferEnd{
			id: t.ID(), bytes: n, sha256: t.Accepted().SHA256, stalled: why,
			got: got, sum: hex.EncodeToString(h.Sum(nil)),
		}
		if werr := t.Err(); werr != nil {
			e.failed, e.gapAfter = werr.Error(), errors.Is(werr, client.ErrChunksLost) && g.s.Stats().Gaps > gaps
		}
		g.mu.Lock()
		e.progress = fmt.Sprintf("%d of %d bytes (%d chunks); client stats %+v, last id %d, states %v", got, total, t.Accepted().Chunks, g.s.Stats(), g.s.LastEventID(), g.states)
		g.transferEnded(e, diag)
		g.mu.Unlock()
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (g *goClient) violations() []string {
	errs := g.tally.violations()
	if d := g.s.Stats().Duplicates; d != 0 {
		// Ids not above the last one taken: the server sent events twice.
		errs = append(errs, fmt.Sprintf("%d duplicate events", d))
	}
	return errs
}
