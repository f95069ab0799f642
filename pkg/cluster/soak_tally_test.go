package cluster_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A soakRun is what every client of one cluster soak shares: when a node was
// killed (gaps are allowed only at the first resume after that) and the
// fate of every chat POSTed.
type soakRun struct {
	killed atomic.Int64 // UnixNano of the kill; 0: no node killed (yet)
	// A node was killed or shut down: a POST may then find its connection
	// closed under it (a balancer's connection still in the accept queue
	// of a node that stops listening is reset), with an unknown outcome.
	nodeLost atomic.Bool

	mu       sync.Mutex
	accepted map[string]int64 // text → id, answered 202
	unknown  map[string]bool  // no answer (connection lost): may or may not have gone out
	refused  map[string]int   // text → status: not sent, must never arrive
	chatErrs []string
}

func newSoakRun() *soakRun {
	return &soakRun{accepted: map[string]int64{}, unknown: map[string]bool{}, refused: map[string]int{}}
}

func (r *soakRun) killedAt() time.Time {
	if ns := r.killed.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// chatted records how a chat POST ended: status 0 is no answer.
func (r *soakRun) chatted(text string, status int, id int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case status == 202:
		r.accepted[text] = id
	case status == 0, status == 503 && r.killed.Load() != 0:
		// After a kill, a 503 may come from the dying node after it
		// published the chat (its context ended before the broker's
		// acknowledgement): a crashed process would not have answered.
		r.unknown[text] = true
	default:
		r.refused[text] = status
	}
}

// A seenChat is one chat a session received.
type seenChat struct {
	id      int64
	text    string
	history bool
}

// A tally is one client session's record, whichever kind of client: the ids
// of its events, its gaps, its chats and transfers, and every broken promise.
type tally struct {
	name   string
	shared *soakRun

	mu      sync.Mutex
	last    uint64    // id of the last event taken
	connAt  time.Time // when the current connection opened
	firstEv bool      // the next event is the first of its connection
	st      tallyStats
	chats   []seenChat
	// Around the gap, if any: the last chat id before it and the first after.
	gapAt                   time.Time
	chatBeforeGap, chatPast int64
	trail                   []string // the last events, for a diagnosis
	errs                    []string
	// lost: the session was lost (404), which is reported; what comes
	// after is not checked against what was sent to the old one.
	lost bool
	once map[string]int // violations reported once, by kind: how often
	// unreachableSince is when the stream's requests began to be answered
	// 503 (zero: they are not); a session moving answers 503 for a moment.
	unreachableSince time.Time
}

// unreachableLimit is how long a session may answer 503 before it counts as
// stuck. Claim is 300 ms; a move or recovery takes a second or two at most.
const unreachableLimit = 10 * time.Second

// unavailable notes a 503 on the stream's request (ok: a stream opened).
// t.mu is held.
func (t *tally) unavailable(ok bool) {
	switch {
	case ok:
		t.unreachableSince = time.Time{}
	case t.unreachableSince.IsZero():
		t.unreachableSince = time.Now()
	case time.Since(t.unreachableSince) > unreachableLimit:
		t.violationOnce("unreachable", "the session has answered 503 for %v: stuck between nodes; trail:\n%s", time.Since(t.unreachableSince).Round(time.Millisecond), t.tail())
	}
}

// tallyStats is what one session saw.
type tallyStats struct {
	Connects, Resumes, Events, Ticks, Chats int
	Gaps                                    int
	Missed                                  uint64
	Verified, FailedByGap, Unknown          int // transfers
	BulkBytes                               int64
	Chat503, Bulk503, Bulk429               int
}

func (a tallyStats) add(b tallyStats) tallyStats {
	a.Connects += b.Connects
	a.Resumes += b.Resumes
	a.Events += b.Events
	a.Ticks += b.Ticks
	a.Chats += b.Chats
	a.Gaps += b.Gaps
	a.Missed += b.Missed
	a.Verified += b.Verified
	a.FailedByGap += b.FailedByGap
	a.Unknown += b.Unknown
	a.BulkBytes += b.BulkBytes
	a.Chat503 += b.Chat503
	a.Bulk503 += b.Bulk503
	a.Bulk429 += b.Bulk429
	return a
}

func newTally(name string, run *soakRun) *tally { return &tally{name: name, shared: run} }

// violation notes a broken promise. t.mu is held.
func (t *tally) violation(format string, args ...any) {
	if len(t.errs) < 50 {
		t.errs = append(t.errs, fmt.Sprintf(format, args...))
	}
}

func (t *tally) note(s string) {
	t.trail = append(t.trail, s)
	if len(t.trail) > 200 {
		t.trail = t.trail[len(t.trail)-100:]
	}
}

// violationOnce reports the first violation of a kind and counts the rest.
// t.mu is held.
func (t *tally) violationOnce(kind, format string, args ...any) {
	if t.once == nil {
		t.once = map[string]int{}
	}
	if t.once[kind]++; t.once[kind] == 1 {
		t.violation(format, args...)
	}
}

// sessionLost reports the loss of the session once. t.mu is held.
func (t *tally) sessionLost(format string, args ...any) {
	if !t.lost {
		t.violation("the session was lost: "+format+"; trail:\n%s", append(args, t.tail())...)
	}
	t.lost = true
}

// connected starts a connection. t.mu is held.
func (t *tally) connected(resumed bool) {
	t.unavailable(true)
	t.connAt, t.firstEv = time.Now(), true
	t.st.Connects++
	if resumed {
		t.st.Resumes++
	}
	t.note(fmt.Sprintf("connected resumed=%v at %s", resumed, t.connAt.Format("15:04:05.000")))
}

// event checks the id of one event of the session's history: one above the
// last, or for a gap the last one missed; holes of up to absorbed ids are
// events the client took without delivering (pkg/client, failed transfers).
// t.mu is held.
func (t *tally) event(id uint64, name string, gapMissed uint64, absorbed *int) {
	t.note(fmt.Sprintf("%d %s", id, name))
	first := t.firstEv
	t.firstEv = false
	want := t.last + 1
	if gapMissed > 0 {
		want = t.last + gapMissed
		t.st.Gaps++
		t.st.Missed += gapMissed
		killed := t.shared.killedAt()
		switch {
		case killed.IsZero():
			t.violation("gap of %d at id %d, and no node died", gapMissed, id)
		case !first || t.connAt.Before(killed):
			t.violation("gap of %d at id %d: not the first event of a connection opened after the kill (connected %s, kill %s)",
				gapMissed, id, t.connAt.Format("15:04:05.000"), killed.Format("15:04:05.000"))
		case t.st.Gaps > 1:
			t.violation("gap of %d at id %d: the second gap of the session", gapMissed, id)
		}
		t.gapAt = time.Now()
		if n := len(t.chats); n > 0 {
			t.chatBeforeGap = t.chats[n-1].id
		}
	}
	switch hole := int64(id) - int64(want); {
	case hole == 0:
	case hole > 0 && absorbed != nil && hole <= int64(*absorbed):
		*absorbed -= int(hole)
	default:
		t.violation("event %s has id %d after %d, want %d; trail:\n%s", name, id, t.last, want, t.tail())
	}
	t.last = id
	t.st.Events++
}

func (t *tally) tail() string {
	s := ""
	for _, l := range t.trail[max(0, len(t.trail)-25):] {
		s += "  " + l + "\n"
	}
	return s
}

// chat records one chat event. t.mu is held.
func (t *tally) chat(id int64, text string, history bool) {
	if t.lost {
		return
	}
	if !history {
		for i := len(t.chats) - 1; i >= 0; i-- {
			if !t.chats[i].history {
				if id <= t.chats[i].id {
					t.violation("chat %d after chat %d", id, t.chats[i].id)
				}
				break
			}
		}
	}
	if !t.gapAt.IsZero() && t.chatPast == 0 && !history {
		t.chatPast = id
	}
	t.chats = append(t.chats, seenChat{id: id, text: text, history: history})
	t.st.Chats++
}

// trailNow is tail for another goroutine than the client's.
func (t *tally) trailNow() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tail()
}

func (t *tally) isLost() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lost
}

func (t *tally) stats() tallyStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st
}

func (t *tally) seen(text string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.ContainsFunc(t.chats, func(c seenChat) bool { return c.text == text })
}

// checkChats compares the chats the session got with those POSTed: every
// one answered 202 exactly once (history replays included), under the id
// the POST answered; one with no answer at most once; a refused one never;
// nothing else. After a gap, the chats between the last before it and the
// first after it may be missing: they died with the node. It returns how
// many accepted chats it verified.
func (t *tally) checkChats() (verified int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lost {
		return 0
	}
	r := t.shared
	r.mu.Lock()
	defer r.mu.Unlock()
	count := map[string]int{}
	for _, c := range t.chats {
		count[c.text]++
		if id, ok := r.accepted[c.text]; ok && id != c.id {
			t.violation("chat %q arrived with id %d, its POST answered %d", c.text, c.id, id)
		}
		switch {
		case r.accepted[c.text] != 0 || r.unknown[c.text]:
		case r.refused[c.text] != 0:
			t.violation("chat %q (id %d) arrived, though its POST was answered %d", c.text, c.id, r.refused[c.text])
		default:
			t.violation("chat %q (id %d) was never posted", c.text, c.id)
		}
	}
	for text, n := range count {
		if n > 1 {
			t.violation("chat %q arrived %d times", text, n)
		}
	}
	missing := 0
	for text, id := range r.accepted {
		if count[text] == 1 {
			verified++
			continue
		}
		if count[text] == 0 && !t.gapAt.IsZero() && id > t.chatBeforeGap && (t.chatPast == 0 || id < t.chatPast) {
			continue // in the gap
		}
		if count[text] == 0 {
			missing++
			if missing <= 5 {
				t.violation("chat %q (id %d, accepted) never arrived (gap: %v, chats around it %d..%d)", text, id, !t.gapAt.IsZero(), t.chatBeforeGap, t.chatPast)
			}
		}
	}
	if missing > 5 {
		t.violation("… %d accepted chats never arrived in all", missing)
	}
	return verified
}

func (t *tally) violations() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	errs := slices.Clone(t.errs)
	for kind, n := range t.once {
		if n > 1 {
			errs = append(errs, fmt.Sprintf("%s: %d times in all", kind, n))
		}
	}
	return errs
}
