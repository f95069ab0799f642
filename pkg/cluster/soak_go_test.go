package cluster_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/xhrsse/xhrsse/pkg/client"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A goSoaker is a cluster soak client made of pkg/client: Session.Run does
// the resuming, through the front, to whichever node comes next.
type goSoaker struct {
	*tally
	c     *client.Client
	s     *client.Session
	ended atomic.Bool // Run returned

	// guarded by tally.mu: how many ids Run may skip (events of transfers
	// that failed, which it takes without delivering).
	absorbable int
}

func newGoSoaker(ctx context.Context, name, base string, run *soakRun, idle time.Duration, channels []string) (*goSoaker, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true // each POST to the next node
	c, err := client.New(base,
		client.WithHTTPClient(&http.Client{Transport: tr, Timeout: soakWait}),
		client.WithIdleTimeout(idle),
		client.WithMaxBackoff(500*time.Millisecond),
		client.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		return nil, err
	}
	s, err := c.Open(ctx, channels...)
	if err != nil {
		return nil, fmt.Errorf("%s: open: %w", name, err)
	}
	return &goSoaker{tally: newTally(name, run), c: c, s: s}, nil
}

// run runs Session.Run and checks what it delivers until ctx ends.
// Runs in its own goroutine.
func (g *goSoaker) run(ctx context.Context) {
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
func (g *goSoaker) take(ev client.Event) {
	if ev.Kind == client.State {
		switch ev.State {
		case client.Connected, client.Resumed:
			g.connected(ev.State == client.Resumed)
		case client.NewSession:
			g.sessionLost("%v", ev.Err)
			g.last = 0 // ids start again on the new session
		case client.Failed:
			g.violation("Run failed: %v", ev.Err)
		case client.Reconnecting:
			var ae *client.APIError
			if errors.As(ev.Err, &ae) && ae.Status == http.StatusServiceUnavailable {
				g.unavailable(false)
			}
		}
		return
	}
	if ev.Kind == client.BulkDone && ev.Transfer.Err() != nil {
		// Run takes the rest of a failed transfer's chunks and its
		// bulk-end without delivering them.
		t := ev.Transfer
		got, _ := t.Progress()
		g.absorbable += t.Accepted().Chunks - int(got/protocol.BulkChunkSize) + 1
	}
	if ev.ID == 0 || ev.Kind == client.Bye {
		return // made up by Run (a transfer failed by a gap), or the position
	}
	var missed uint64
	if ev.Kind == client.Gap {
		missed = max(ev.Gap.Missed, 1)
	}
	g.event(ev.ID, ev.Name, missed, &g.absorbable)
	switch ev.Kind {
	case client.Tick:
		g.st.Ticks++
	case client.Chat:
		g.chat(ev.Chat.ID, ev.Chat.Text, ev.Chat.History)
	case client.Other:
		g.violation("event Run could not read: %s %.80q (%v)", ev.Name, ev.Data, ev.Err)
	}
}

// chatLoop chats through the front every period (with jitter) until load
// ends. Runs in its own goroutine.
func (g *goSoaker) chatLoop(load context.Context, period time.Duration) {
	for n := 0; ; n++ {
		select {
		case <-load.Done():
			return
		case <-time.After(period/2 + rand.N(period)):
		}
		text := fmt.Sprintf("%s #%d", g.name, n)
		id, err := g.s.Chat(context.Background(), g.name, text) // the client's Timeout bounds it
		var ae *client.APIError
		st := 0
		switch {
		case err == nil:
			st = http.StatusAccepted
		case errors.As(err, &ae):
			st = ae.Status
		}
		g.shared.chatted(text, st, id)
		g.mu.Lock()
		switch {
		case st == http.StatusServiceUnavailable:
			g.st.Chat503++
		case st == 0 && !g.shared.nodeLost.Load():
			g.violation("chat POST: %v, and no node went away", err)
		case st != 0 && st != http.StatusAccepted:
			g.violationOnce(fmt.Sprintf("chat POST answered %d", st), "chat POST: %v", err)
		}
		g.mu.Unlock()
	}
}

// bulkLoop asks for transfers one after another until load ends; each must
// end verified (the bytes Run wrote hash to what the POST announced) or
// failed by a gap after its POST. Runs in its own goroutine.
func (g *goSoaker) bulkLoop(load context.Context, minSize, maxSize int64) {
	for load.Err() == nil {
		n := minSize + rand.Int64N(maxSize-minSize+1)
		gaps := g.s.Stats().Gaps
		h := sha256.New()
		t, err := g.s.Bulk(context.Background(), protocol.BulkPost{Bytes: &n}, h)
		var ae *client.APIError
		if err != nil {
			g.mu.Lock()
			switch {
			case errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable:
				g.st.Bulk503++
			case errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests:
				g.st.Bulk429++
			case errors.As(err, &ae):
				g.violationOnce(fmt.Sprintf("bulk POST answered %d", ae.Status), "bulk POST: %v", err)
			case !g.shared.nodeLost.Load():
				g.violation("bulk POST: %v, and no node went away", err)
			default:
				g.st.Unknown++
			}
			g.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
			continue
		}
		// Until it ends, the limit passes or Run has returned (then it
		// never will: reported as Run's end).
		for limit := time.Now().Add(soakTransferLimit); !isClosed(t.Done()) && !g.ended.Load() && time.Now().Before(limit); {
			select {
			case <-t.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
		if !isClosed(t.Done()) && g.ended.Load() {
			return
		}
		werr := t.Err()
		got, total := t.Progress()
		g.mu.Lock()
		switch {
		case !isClosed(t.Done()):
			g.violation("transfer %s (%d bytes): no end in %v, at %d of %d; stats %+v; trail:\n%s", t.ID(), n, soakTransferLimit, got, total, g.s.Stats(), g.tail())
		case werr == nil:
			if sum := hex.EncodeToString(h.Sum(nil)); sum != t.Accepted().SHA256 || got != n {
				g.violation("transfer %s: wrote %d bytes, sha256 %s; the POST said %d, %s", t.ID(), got, sum, n, t.Accepted().SHA256)
			} else {
				g.st.Verified++
				g.st.BulkBytes += n
			}
		case errors.Is(werr, client.ErrChunksLost) && g.s.Stats().Gaps > gaps:
			g.st.FailedByGap++
		default:
			g.violation("transfer %s failed without a gap after its POST: %v", t.ID(), werr)
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

// duplicates is what Run dropped as not new: the server sent them twice.
func (g *goSoaker) duplicates() uint64 { return g.s.Stats().Duplicates }
