package soak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/publish"
)

// Publishing in the cluster soaks: the nodes declare the published channel
// pubChannel, every client is tuned to it, and publishers POST to random
// nodes throughout, one by JSON events, one by streaming text bodies (a line
// every few milliseconds). Each event's data names its publisher and its
// number ("json#12"); each publisher sends one request after the other, so
// the events it had acknowledged are in the broker's order in its numbers.

const (
	pubChannel = "log"
	pubToken   = "soak-publish-token"
	// pubEvery is the pause between a publisher's events (and lines).
	pubEvery = 25 * time.Millisecond
)

// pubRun is the fate of every published event of a soak.
type pubRun struct {
	mu       sync.Mutex
	accepted map[string]bool          // acknowledged: 202, or counted in a text body's answer
	unknown  map[string]bool          // sent, not acknowledged: may arrive, once
	answers  map[string]int           // requests by publisher and status ("json 202", "text 0")
	slowest  map[string]time.Duration // by publisher: the longest JSON request
	errs     []string                 // broken promises of the publish requests
}

func (p *pubRun) note(data string, acked bool) {
	if p.accepted == nil {
		p.accepted, p.unknown = map[string]bool{}, map[string]bool{}
	}
	if acked {
		p.accepted[data] = true
	} else {
		p.unknown[data] = true
	}
}

// published records how one publish request of events ended: the first
// acked of them acknowledged, the rest sent but of unknown fate. A refusal
// is a broken promise unless it is a 503 (or no answer) after a broker or
// node was lost: the events were maybe stored, their acknowledgement lost.
// took is how long the request took, for a JSON one (0: a text body).
func (r *soakRun) published(who string, events []string, acked, status int, took time.Duration, err error) {
	p := &r.pub
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.answers == nil {
		p.answers, p.slowest = map[string]int{}, map[string]time.Duration{}
	}
	p.answers[fmt.Sprintf("%s %d", who, status)]++
	p.slowest[who] = max(p.slowest[who], took)
	for i, data := range events {
		p.note(data, i < acked)
	}
	switch {
	case err == nil && acked == len(events):
	case err == nil:
		p.errs = append(p.errs, fmt.Sprintf("%s: %d of %d events published, and no error", who, acked, len(events)))
	case status == 0 && (r.nodeLost.Load() || r.brokerLost.Load()):
	case status == http.StatusServiceUnavailable && (r.nodeLost.Load() || r.brokerLost.Load()):
	default:
		if len(p.errs) < 20 {
			p.errs = append(p.errs, fmt.Sprintf("%s: publish answered %d: %v", who, status, err))
		}
	}
}

// statusOf is the status of a publish error (0: no answer).
func statusOf(err error) int {
	var pe *publish.Error
	if errors.As(err, &pe) {
		return pe.Status
	}
	return 0
}

// publishJSON publishes data as one JSON event to node url and records it.
func (r *soakRun) publishJSON(hc *http.Client, url, who, data string) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	p := &publish.Publisher{URL: url, Token: pubToken, Client: hc}
	start := time.Now()
	err := p.Publish(ctx, pubChannel, data)
	st, acked := http.StatusAccepted, 1
	if err != nil {
		st, acked = statusOf(err), 0
	}
	r.published(who, []string{data}, acked, st, time.Since(start), err)
	return err
}

// publishLines publishes lines as a text body to node url, writing a line
// every pubEvery, and records them: the answer's count acknowledges the
// first lines; those written after are of unknown fate.
func (r *soakRun) publishLines(hc *http.Client, url, who string, lines []string) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	pr, pw := io.Pipe()
	var written int // lines handed to the request; read once wg is done
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, l := range lines {
			if _, err := io.WriteString(pw, l+"\n"); err != nil {
				return
			}
			written++
			time.Sleep(pubEvery)
		}
		pw.Close()
	})
	p := &publish.Publisher{URL: url, Token: pubToken, Client: hc}
	n, err := p.Lines(ctx, pubChannel, pr)
	pr.CloseWithError(errors.New("request ended")) // stops the writer
	wg.Wait()
	st := http.StatusOK
	if err != nil {
		st = statusOf(err)
	}
	r.published(who, lines[:written], n, st, 0, err)
}

// publishLoop publishes until load ends, to a random one of targets each
// request: JSON events one by one (kind "json"), or text bodies of 5 to 15
// lines (kind "text"). Runs in its own goroutine.
func (r *soakRun) publishLoop(load context.Context, kind string, targets func() []string, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 4))
	hc := &http.Client{Transport: &http.Transport{}, Timeout: wait}
	defer hc.CloseIdleConnections()
	n := 0
	for load.Err() == nil {
		ts := targets()
		url := ts[rng.IntN(len(ts))]
		switch kind {
		case "json":
			_ = r.publishJSON(hc, url, kind, fmt.Sprintf("%s#%d", kind, n))
			n++
			time.Sleep(pubEvery)
		default:
			lines := make([]string, 5+rng.IntN(11))
			for i := range lines {
				lines[i] = fmt.Sprintf("%s#%d", kind, n)
				n++
			}
			r.publishLines(hc, url, kind, lines)
		}
	}
}

// endPublish publishes a last event, to each of targets in turn until one
// is acknowledged, and waits until every client that has not lost its
// session got it: every event acknowledged before it was delivered before it.
func (cr *crowd) endPublish(t *testing.T, targets []string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{}, Timeout: wait}
	defer hc.CloseIdleConnections()
	// Each try its own event: one refused may still have been stored.
	try, data := 0, ""
	ssetest.Eventually(t, "the last published event acknowledged", func() bool {
		data = fmt.Sprintf("end#%d", try)
		err := cr.run.publishJSON(hc, targets[try%len(targets)], "end", data)
		try++
		return err == nil
	})
	deadline := time.Now().Add(wait)
	for _, m := range cr.all {
		for tl := m.record(); !tl.isLost() && !tl.gotPublished(data); {
			if time.Now().After(deadline) {
				t.Errorf("%s: the last published event did not arrive in %v; trail:\n%s", tl.name, wait, tl.trailNow())
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// pubNumber splits an event's data into its publisher and number.
func pubNumber(data string) (string, int) {
	who, num, _ := strings.Cut(data, "#")
	n, err := strconv.Atoi(num)
	if err != nil {
		return who, -1
	}
	return who, n
}

// checkPublished compares the published events the session got with those
// sent: every acknowledged one exactly once, one of unknown fate at most
// once, nothing else; each publisher's acknowledged events in its order. An
// acknowledged event may be missing only where a gap fell among its
// publisher's events (between the last before the gap and the first after).
// It returns how many acknowledged events it verified.
func (t *tally) checkPublished() (verified int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lost {
		return 0
	}
	p := &t.shared.pub
	p.mu.Lock()
	defer p.mu.Unlock()
	count := map[string]int{}
	last := map[string]int{} // by publisher: the last acknowledged number
	for _, data := range t.pubs {
		count[data]++
		switch {
		case p.accepted[data]:
			who, n := pubNumber(data)
			if l, ok := last[who]; ok && n <= l {
				t.violation("published %q after %s#%d, acknowledged in the other order", data, who, l)
			}
			last[who] = n
		case p.unknown[data]:
		default:
			t.violation("published %q arrived, never acknowledged nor sent", data)
		}
	}
	for data, n := range count {
		if n > 1 {
			t.violation("published %q arrived %d times", data, n)
		}
	}
	missing := 0
	for data := range p.accepted {
		switch {
		case count[data] == 1:
			verified++
		case count[data] == 0 && t.inPubGap(data):
		case count[data] == 0:
			if missing++; missing <= 5 {
				t.violation("published %q (acknowledged) never arrived (%d gaps)", data, len(t.pubGaps))
			}
		}
	}
	if missing > 5 {
		t.violation("… %d acknowledged published events never arrived in all", missing)
	}
	return verified
}

// inPubGap reports whether published event data may have been lost in a
// gap: its number lies between its publisher's last event before a gap and
// its first after it. t.mu is held.
func (t *tally) inPubGap(data string) bool {
	who, n := pubNumber(data)
	for _, at := range t.pubGaps {
		before, after := -1, int(^uint(0)>>1)
		for _, d := range t.pubs[:at] {
			if w, k := pubNumber(d); w == who {
				before = k
			}
		}
		for _, d := range t.pubs[at:] {
			if w, k := pubNumber(d); w == who {
				after = k
				break
			}
		}
		if n > before && n < after {
			return true
		}
	}
	return false
}

// checkPubOrder fails the test where two clients got published events in
// different orders: there is one order per channel, the broker's.
func (cr *crowd) checkPubOrder(t *testing.T) {
	t.Helper()
	var names []string
	var seqs [][]string
	for _, m := range cr.all {
		tl := m.record()
		tl.mu.Lock()
		if !tl.lost {
			names, seqs = append(names, tl.name), append(seqs, slices.Clone(tl.pubs))
		}
		tl.mu.Unlock()
	}
	for i := range seqs {
		for j := i + 1; j < len(seqs); j++ {
			if d := orderDiff(seqs[i], seqs[j]); d != "" {
				t.Errorf("%s and %s got published events in different orders: %s", names[i], names[j], d)
			}
		}
	}
}

// orderDiff compares the events a and b have in common, in the order of
// each; it describes the first difference ("": none).
func orderDiff(a, b []string) string {
	inA, inB := map[string]bool{}, map[string]bool{}
	for _, d := range a {
		inA[d] = true
	}
	for _, d := range b {
		inB[d] = true
	}
	var ca, cb []string
	for _, d := range a {
		if inB[d] {
			ca = append(ca, d)
		}
	}
	for _, d := range b {
		if inA[d] {
			cb = append(cb, d)
		}
	}
	for i := range min(len(ca), len(cb)) {
		if ca[i] != cb[i] {
			return fmt.Sprintf("event %d of those both got: %q, and %q", i, ca[i], cb[i])
		}
	}
	return ""
}

// pubCounts returns how many published events were acknowledged and of
// unknown fate, the publish requests by publisher and status, and the
// broken promises of the publish requests.
func (r *soakRun) pubCounts() (accepted, unknown int, answers string, errs []string) {
	p := &r.pub
	p.mu.Lock()
	defer p.mu.Unlock()
	var as []string
	for k, n := range p.answers {
		as = append(as, fmt.Sprintf("%s: %d", k, n))
	}
	for who, d := range p.slowest {
		if d > 0 {
			as = append(as, fmt.Sprintf("%s slowest %v", who, d.Round(time.Millisecond)))
		}
	}
	slices.Sort(as)
	return len(p.accepted), len(p.unknown), strings.Join(as, ", "), slices.Clone(p.errs)
}

// TestPubChecks: the published-event checks find what they look for: two
// orders of the events both clients got, and a loss inside a gap only.
func TestPubChecks(t *testing.T) {
	if d := orderDiff([]string{"a#1", "b#1", "a#2"}, []string{"a#1", "a#2", "c#1"}); d != "" {
		t.Errorf("same order of the common events: %s", d)
	}
	if d := orderDiff([]string{"a#1", "b#1", "a#2"}, []string{"b#1", "a#1"}); d == "" {
		t.Error("a#1 and b#1 in two orders: no difference found")
	}
	tl := &tally{pubs: []string{"json#1", "text#1", "json#4", "text#2"}, pubGaps: []int{2}}
	for data, want := range map[string]bool{"json#2": true, "json#3": true, "json#5": false, "text#3": false, "json#0": false} {
		if got := tl.inPubGap(data); got != want {
			t.Errorf("inPubGap(%q) = %v, want %v", data, got, want)
		}
	}
}
