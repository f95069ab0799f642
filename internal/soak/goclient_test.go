package soak

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
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
	name     string
	c        *client.Client
	s        *client.Session
	requests func(session string) []string // what the proxy relayed, for a diagnosis
	ended    atomic.Bool                   // Run has returned

	mu     sync.Mutex
	st     clientStats
	last   uint64
	chats  []int64
	states []string // the last few State changes, for a diagnosis
	// absorbable is how many events of failed transfers Run may still take
	// without delivering them; absorbed how many it did.
	absorbable, absorbed int
	trail                []string                 // the last events taken, for a diagnosis
	progress             map[*client.Transfer]int // BulkProgress events delivered, by transfer under way
	errs                 []string
}

func newGoClient(ctx context.Context, name, base string, idle time.Duration, channels []string) (*goClient, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	c, err := client.New(base,
		client.WithHTTPClient(&http.Client{Transport: tr}),
		client.WithIdleTimeout(idle),
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
	return &goClient{name: name, c: c, s: s}, nil
}

func (g *goClient) violation(format string, args ...any) {
	g.errs = append(g.errs, fmt.Sprintf(format, args...))
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
				g.violation("Run returned %v", err)
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
	g.trail = append(g.trail, fmt.Sprintf("%d %s %s %s", ev.ID, ev.Kind, ev.Name, d))
	if len(g.trail) > 400 {
		g.trail = g.trail[len(g.trail)-200:]
	}
	if ev.Kind == client.State {
		g.states = append(g.states, fmt.Sprintf("%s(%v)", ev.State, ev.Err))
		if len(g.states) > 8 {
			g.states = g.states[1:]
		}
		switch ev.State {
		case client.Connected, client.Resumed:
			g.st.Connects++
			if ev.State == client.Resumed {
				g.st.Resumes++
			}
		case client.NewSession:
			g.violation("the session was lost (%v): nothing may be lost in a soak of short cuts", ev.Err)
		case client.Failed:
			g.violation("Run failed: %v; requests for its session through the proxy:\n%s", ev.Err, strings.Join(g.requests(g.s.ID()), "\n"))
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
	want := g.last + 1
	if ev.Kind == client.Gap {
		want = g.last + ev.Gap.Missed
		g.st.Gaps++
		g.st.Missed += ev.Gap.Missed
	}
	switch hole := int(ev.ID) - int(want); {
	case hole > 0 && hole <= g.absorbable:
		g.absorbable -= hole
		g.absorbed += hole
	case hole != 0:
		hint := ""
		for t, n := range g.progress {
			// A transfer that has taken more chunks than Run delivered
			// BulkProgress events for: a chunk was fed, its delivery cut
			// short, and its resend absorbed as a repeat.
			if got, _ := t.Progress(); (got+protocol.BulkChunkSize-1)/protocol.BulkChunkSize > int64(n) && !isClosed(t.Done()) {
				hint = fmt.Sprintf(" (transfer %s has taken %d bytes but Run delivered %d chunks of it: pkg/client's redelivery bug, see TestClientRedeliversAfterCut)", t.ID(), got, n)
			}
		}
		reqs := g.requests(g.s.ID())
		g.violation("event %s (%s) has id %d after %d, want %d (%d events of failed transfers may be missing)%s; client stats %+v; trail:\n%s\nthe proxy's last requests and session events of this session:\n%s",
			ev.Name, ev.Kind, ev.ID, g.last, want, g.absorbable, hint, g.s.Stats(), strings.Join(g.trail[max(0, len(g.trail)-30):], "\n"), strings.Join(reqs[max(0, len(reqs)-12):], "\n"))
	}
	g.last = ev.ID
	g.st.Events++
	if ev.Kind == client.BulkProgress {
		if g.progress == nil {
			g.progress = make(map[*client.Transfer]int)
		}
		g.progress[ev.Transfer]++
	}
	if ev.Kind == client.BulkDone {
		delete(g.progress, ev.Transfer)
	}
	switch ev.Kind {
	case client.Tick:
		g.st.Ticks++
	case client.Chat:
		if ev.Chat.History {
			return
		}
		if n := len(g.chats); n > 0 && ev.Chat.ID <= g.chats[n-1] {
			g.violation("chat %d after chat %d", ev.Chat.ID, g.chats[n-1])
		}
		g.chats = append(g.chats, ev.Chat.ID)
		g.st.Chats++
	case client.Other:
		g.violation("event Run could not read: %s %.80q (%v)", ev.Name, ev.Data, ev.Err)
	}
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
		t, err := g.s.Bulk(load, protocol.BulkPost{Bytes: &n}, h)
		var ae *client.APIError
		switch {
		case load.Err() != nil:
			return
		case errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests:
			time.Sleep(100 * time.Millisecond)
			continue
		case err != nil:
			g.mu.Lock()
			g.violation("Bulk: %v", err)
			g.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
			continue
		}
		why := awaitTransfer(t.Done(),
			// Done, or never will be: Run has returned.
			func() bool { return isClosed(t.Done()) || g.ended.Load() },
			func() int64 { got, _ := t.Progress(); return got },
			func() int { g.mu.Lock(); defer g.mu.Unlock(); return g.st.Events })
		werr := t.Err()
		g.mu.Lock()
		got, total := t.Progress()
		switch {
		case !isClosed(t.Done()) && g.ended.Load():
			g.violation("transfer %s did not end: Run returned (see above)", t.ID())
			g.mu.Unlock()
			return
		case why != "":
			g.st.Stalled++
			g.violation("STALL: transfer %s (%d bytes, %d chunks) at %d of %d bytes: %s; client stats %+v, last id %d, states %v; %s; trail:\n%s",
				t.ID(), n, t.Accepted().Chunks, got, total, why, g.s.Stats(), g.s.LastEventID(), g.states, diag(), strings.Join(g.trail, "\n"))
		case werr == nil:
			if sum := hex.EncodeToString(h.Sum(nil)); sum != t.Accepted().SHA256 || got != n {
				g.violation("transfer %s: wrote %d bytes with sha256 %s; the POST said %d, %s", t.ID(), got, sum, n, t.Accepted().SHA256)
			} else {
				g.st.Verified++
				g.st.BulkBytes += n
			}
		case errors.Is(werr, client.ErrChunksLost) && g.s.Stats().Gaps > gaps:
			g.st.FailedByGap++
		default:
			g.violation("transfer %s failed without a gap after it: %v", t.ID(), werr)
		}
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

func (g *goClient) chatIDs() []int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.chats)
}

func (g *goClient) stats() clientStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.st
}

func (g *goClient) violations() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	errs := slices.Clone(g.errs)
	if d := g.s.Stats().Duplicates; d != 0 {
		// Ids not above the last one taken: the server sent events twice.
		errs = append(errs, fmt.Sprintf("%d duplicate events", d))
	}
	return errs
}
