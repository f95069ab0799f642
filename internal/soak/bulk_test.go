package soak

import (
	"fmt"
	"net/http"
	"time"
)

// A transfer has stalled when it has not moved for stallTime while at least
// stallEvents other events arrived on its stream: the stream flows but the
// transfer does not (chunks are made whenever the stream has caught up, so a
// flowing stream carries them). A busy machine slows both alike and is no
// stall. One that has not ended within the run's transferLimit is reported
// all the same.
const (
	stallTime   = wait
	stallEvents = 2000
)

// awaitTransfer polls until done() and returns "", or returns why it gave up:
// progress() (chunks or bytes so far) did not move for stallTime while
// events() (the stream's event count) grew by stallEvents, or limit passed.
func awaitTransfer(notify <-chan struct{}, limit time.Duration, done func() bool, progress func() int64, events func() int) string {
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
		if now.Sub(start) >= limit {
			return fmt.Sprintf("no end in %v (the machine is very slow, or it stalled)", limit)
		}
	}
	return ""
}

// bulkRefused notes a bulk POST that was not accepted (status 0: no
// answer) and whether that broke a promise: 429 while the one before is
// still under way on the server, 503 while the session moves, no answer
// only after a node went away. t.mu is held.
func (t *tally) bulkRefused(status int, err error) {
	switch {
	case status == 0 && t.shared.nodeLost.Load():
		t.st.Unknown++
	case status == 0:
		t.violation("bulk POST: %v, and no node went away", err)
	case status == http.StatusTooManyRequests:
		t.st.Bulk429++
	case status == http.StatusServiceUnavailable && t.shared.moves:
		t.st.Bulk503++
	default:
		t.violationOnce(fmt.Sprintf("bulk POST answered %d", status), "bulk POST answered %d: %v", status, err)
	}
}

// A transferEnd is how one transfer a client asked for ended, as it saw it.
type transferEnd struct {
	id     string
	bytes  int64  // what the POST announced
	sha256 string // what the POST announced

	stalled  string // why awaiting it gave up; "" if it ended
	progress string // how far it got, for a stall
	failed   string // why it failed; "" if it did not
	gapAfter bool   // a gap came after the POST, and the failure is its
	got      int64  // bytes received
	sum      string // their sha256
}

// transferEnded checks how a transfer ended: verified, with the sha256 its POST
// announced, or failed by a gap that came after the POST. t.mu is held.
func (t *tally) transferEnded(e transferEnd, diag func() string) {
	switch {
	case e.stalled != "":
		t.st.Stalled++
		t.violation("STALL: transfer %s (%d bytes) got %s: %s; %s; trail:\n%s", e.id, e.bytes, e.progress, e.stalled, diag(), t.tail())
	case e.failed != "" && e.gapAfter:
		t.st.FailedByGap++
	case e.failed != "":
		t.violation("transfer %s failed (%s) though no gap came after it was asked for", e.id, e.failed)
	case e.got != e.bytes || e.sum != e.sha256:
		t.violation("transfer %s: received %d bytes with sha256 %s; the POST said %d, %s", e.id, e.got, e.sum, e.bytes, e.sha256)
	default:
		t.st.Verified++
		t.st.BulkBytes += e.got
	}
}
