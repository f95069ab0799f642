package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A gapRule says when a soak's sessions may see a gap.
type gapRule int

const (
	// gapsNever: every cut is far shorter than the replay window.
	gapsNever gapRule = iota
	// gapsAnywhere: the replay window is small; stalls and slow reads
	// reach past it.
	gapsAnywhere
	// gapsAfterKill: one gap per session at most, as the first event of its
	// first connection after a node was killed (its history died with it).
	gapsAfterKill
)

// A soakRun is what every client of one soak shares: its rules, what
// happened to the nodes, and the fate of every chat POSTed.
type soakRun struct {
	gaps gapRule
	// moves: sessions move between nodes, and a request for one that is
	// moving may be answered 503 for a moment (at most unreachableLimit).
	moves bool
	// transferLimit bounds one transfer, however it flows (awaitTransfer).
	transferLimit time.Duration
	// requests returns the proxy's log of requests that contain a string
	// (Proxy.Requests), for a diagnosis.
	requests func(string) []string

	killed atomic.Int64 // UnixNano of a node's kill; 0: none (yet)
	// A node was killed or shut down: a POST may then find its connection
	// closed under it (a balancer's connection still in the accept queue
	// of a node that stops listening is reset), with an unknown outcome.
	nodeLost atomic.Bool
	// A broker was lost or changed leaders: a chat POST answered 503 may
	// still have been stored (its acknowledgement was lost with the broker),
	// so its fate is unknown (docs/SCALING.md).
	brokerLost atomic.Bool

	mu       sync.Mutex
	accepted map[string]int64 // text → id, answered 202
	order    []int64          // ids answered 202, in order
	unknown  map[string]bool  // no answer: may or may not have gone out
	refused  map[string]int   // text → status: not sent, must never arrive
	chat503  int              // refusals of a session on the move
	errs     []string         // broken promises of chat POSTs
	once     map[string]int   // errs reported once, by kind: how often

	pub pubRun // the published events, in the soaks that publish
}

func newSoakRun(gaps gapRule, moves bool, transferLimit time.Duration, requests func(string) []string) *soakRun {
	return &soakRun{
		gaps: gaps, moves: moves, transferLimit: transferLimit, requests: requests,
		accepted: map[string]int64{}, unknown: map[string]bool{}, refused: map[string]int{},
	}
}

func (r *soakRun) killedAt() time.Time {
	if ns := r.killed.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// A chatPoster POSTs one chat and returns the status (0: no answer) and,
// when accepted, its id.
type chatPoster func(ctx context.Context, text string) (status int, id int64, err error)

// chatted records how a chat POST ended and whether that broke a promise:
// 202 or, while sessions move, 503 to try again; no answer only after a
// node went away.
func (r *soakRun) chatted(who, text string, status int, id int64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case status == http.StatusAccepted:
		r.accepted[text] = id
		r.order = append(r.order, id)
		return
	case status == 0, status == http.StatusServiceUnavailable && (r.killed.Load() != 0 || r.brokerLost.Load()):
		// After a kill, a 503 may come from the dying node after it
		// published the chat (its context ended before the broker's
		// acknowledgement): a crashed process would not have answered.
		r.unknown[text] = true
	default:
		r.refused[text] = status
	}
	switch {
	case status == http.StatusServiceUnavailable && r.moves:
		r.chat503++
	case status == 0 && !r.nodeLost.Load():
		r.errs = append(r.errs, fmt.Sprintf("%s: chat POST: %v, and no node went away", who, err))
	case status != 0:
		if r.once == nil {
			r.once = map[string]int{}
		}
		kind := fmt.Sprintf("chat POST answered %d", status)
		if r.once[kind]++; r.once[kind] == 1 {
			r.errs = append(r.errs, fmt.Sprintf("%s: %s: %v", who, kind, err))
		}
	}
}

// chatLoop posts a chat every period on average (with jitter, so that
// clients do not chat in step) until load ends, each POST after the one
// before: a slow server gets fewer, never a burst. Runs in its own
// goroutine.
func (r *soakRun) chatLoop(load context.Context, who string, period time.Duration, say chatPoster) {
	next := time.Now()
	for n := 0; ; n++ {
		next = next.Add(period/2 + rand.N(period))
		if now := time.Now(); next.Before(now) {
			next = now // behind: no catching up
		}
		select {
		case <-load.Done():
			return
		case <-time.After(time.Until(next)):
		}
		// Markup and an escape sequence: no client may take them for
		// anything but text.
		text := fmt.Sprintf("%s #%d <b>&amp;\x1b[31m", who, n)
		// Not cancelled with load: a POST cut short has an unknown fate.
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		st, id, err := say(ctx, text)
		cancel()
		r.chatted(who, text, st, id, err)
	}
}

// acceptedIDs returns the ids of the chats accepted so far, in order, and
// the broken promises of the chat POSTs.
func (r *soakRun) acceptedIDs() ([]int64, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.order), append(slices.Clone(r.errs), onceCounts(r.once)...)
}

// chatCounts returns how many chats were accepted, had no answer, were
// refused, and of those how many with a 503 while sessions moved.
func (r *soakRun) chatCounts() (accepted, unknown, refused, moving int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.accepted), len(r.unknown), len(r.refused), r.chat503
}
