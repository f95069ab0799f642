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
	"sync"
	"time"

	"github.com/xhrsse/xhrsse/pkg/client"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A goClient is a session of pkg/client, the package the TUI uses, with its
// automatic reconnect (Session.Run) doing all the resuming. The soak checks
// what Run delivers the way rawClient checks the wire, and each transfer
// through the writer Session.Bulk fills.
type goClient struct {
	name string
	c    *client.Client
	s    *client.Session

	mu     sync.Mutex
	st     clientStats
	last   uint64
	chats  []int64
	states []string // the last few State changes, for a diagnosis
	errs   []string
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
			g.violation("Run failed: %v", ev.Err)
		}
		return
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
	if ev.ID != want {
		g.violation("event %s (%s) has id %d after %d, want %d", ev.Name, ev.Kind, ev.ID, g.last, want)
	}
	g.last = ev.ID
	g.st.Events++
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
// announced) or failed by a gap that came after it was asked for, within
// stall. Runs in its own goroutine.
func (g *goClient) bulkLoop(load context.Context, seed uint64, minSize, maxSize int64, stall time.Duration, diag func() string) {
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
		wctx, cancel := context.WithTimeout(context.Background(), stall)
		werr := t.Wait(wctx)
		cancel()
		g.mu.Lock()
		got, total := t.Progress()
		switch {
		case errors.Is(werr, context.DeadlineExceeded):
			g.st.Stalled++
			g.violation("STALL: transfer %s (%d bytes, %d chunks) at %d of %d bytes after %v; client stats %+v, last id %d, states %v; %s",
				t.ID(), n, t.Accepted().Chunks, got, total, stall, g.s.Stats(), g.s.LastEventID(), g.states, diag())
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
