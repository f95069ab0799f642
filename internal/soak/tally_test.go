package soak

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// clientStats is what one soak client saw; both kinds report it.
type clientStats struct {
	Connects, Resumes, SelfCuts, Events, Ticks, Chats int
	Published                                         int
	Gaps                                              int
	Missed                                            uint64
	Verified, FailedByGap, Stalled, Unknown           int // transfers
	BulkBytes                                         int64
	Bulk503, Bulk429                                  int
}

func (a clientStats) add(b clientStats) clientStats {
	a.Connects += b.Connects
	a.Resumes += b.Resumes
	a.SelfCuts += b.SelfCuts
	a.Events += b.Events
	a.Ticks += b.Ticks
	a.Chats += b.Chats
	a.Published += b.Published
	a.Gaps += b.Gaps
	a.Missed += b.Missed
	a.Verified += b.Verified
	a.FailedByGap += b.FailedByGap
	a.Stalled += b.Stalled
	a.Unknown += b.Unknown
	a.BulkBytes += b.BulkBytes
	a.Bulk503 += b.Bulk503
	a.Bulk429 += b.Bulk429
	return a
}

// A seenChat is one chat a session received.
type seenChat struct {
	id      int64
	text    string
	history bool
}

// A gapWindow is where a gap fell among the live chats: the last chat id
// before it and the first after it (0: none yet). A chat between the two
// may have been lost in it.
type gapWindow struct{ before, after int64 }

// A tally is one client session's record, whichever kind of client: the ids
// of its events, its gaps, its chats and transfers, and every broken
// promise. The clients embed it and hold mu while they feed it.
type tally struct {
	name   string
	sid    string // the session, once opened
	shared *soakRun
	// notify (cap 1) wakes the bulk loop: a transfer ended or a gap came.
	notify chan struct{}

	mu      sync.Mutex
	last    uint64    // id of the last event taken
	connAt  time.Time // when the current connection opened
	firstEv bool      // the next event is the first of its connection
	st      clientStats
	chats   []seenChat
	gaps    []gapWindow
	pubs    []string // the data of the published events, in order
	pubGaps []int    // where a gap fell among pubs: how many came before it
	// absorbable is how many ids the client may skip: events it took
	// without delivering them (pkg/client, the rest of a failed transfer).
	absorbable int
	// hint, if set, explains a hole in the ids, for a diagnosis.
	hint  func() string
	trail []string // the last events, for a diagnosis
	errs  []string
	// lost: the session was lost, which is reported; what comes after is
	// not checked against what was sent to the old one.
	lost bool
	once map[string]int // violations reported once, by kind: how often
	// unreachableSince is when the stream's requests began to be answered
	// 503 (zero: they are not); a session moving answers 503 for a moment.
	unreachableSince time.Time
	// eventAt, chatAt and pubAt are when the last event, the last live
	// chat and the last published event came, to measure how soon clients
	// hear again after a fault.
	eventAt, chatAt, pubAt time.Time
}

// unreachableLimit is how long a session may answer 503 before it counts as
// stuck. Claim is 300 ms; a move or recovery takes a second or two at most.
const unreachableLimit = 10 * time.Second

func newTally(name string, run *soakRun) *tally {
	return &tally{name: name, shared: run, notify: make(chan struct{}, 1)}
}

// violation notes a broken promise. t.mu is held.
func (t *tally) violation(format string, args ...any) {
	if len(t.errs) < 50 {
		t.errs = append(t.errs, fmt.Sprintf(format, args...))
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

// note adds a line to the trail. t.mu is held.
func (t *tally) note(s string) {
	t.trail = append(t.trail, s)
	if len(t.trail) > 400 {
		t.trail = t.trail[len(t.trail)-200:]
	}
}

// tail is the end of the trail, with what the proxy relayed for the
// session. t.mu is held.
func (t *tally) tail() string {
	var b strings.Builder
	for _, l := range t.trail[max(0, len(t.trail)-30):] {
		b.WriteString("  " + l + "\n")
	}
	if t.sid != "" && t.shared.requests != nil {
		reqs := t.shared.requests(t.sid)
		b.WriteString("the proxy's last requests and session events of this session:\n")
		for _, r := range reqs[max(0, len(reqs)-12):] {
			b.WriteString("  " + r + "\n")
		}
	}
	return b.String()
}

// signal wakes the bulk loop. t.mu is held.
func (t *tally) signal() {
	select {
	case t.notify <- struct{}{}:
	default:
	}
}

// unavailable notes a 503 on the stream's request, which only a session
// on the move may answer, and only for a while. t.mu is held.
func (t *tally) unavailable(what string) {
	switch {
	case !t.shared.moves:
		t.violationOnce("503", "%s answered 503 on a single server", what)
	case t.unreachableSince.IsZero():
		t.unreachableSince = time.Now()
	case time.Since(t.unreachableSince) > unreachableLimit:
		t.violationOnce("unreachable", "the session has answered 503 for %v: stuck between nodes; trail:\n%s", time.Since(t.unreachableSince).Round(time.Millisecond), t.tail())
	}
}

// sessionLost reports the loss of the session once. t.mu is held.
func (t *tally) sessionLost(format string, args ...any) {
	if !t.lost {
		t.violation("the session was lost: "+format+"; trail:\n%s", append(args, t.tail())...)
	}
	t.lost = true
	t.last = 0 // ids start again on a new session
}

// connected starts a connection. t.mu is held.
func (t *tally) connected(resumed bool, where string) {
	t.unreachableSince = time.Time{}
	t.connAt, t.firstEv = time.Now(), true
	t.st.Connects++
	if resumed {
		t.st.Resumes++
	}
	t.note(fmt.Sprintf("connected resumed=%v at %s%s", resumed, t.connAt.Format("15:04:05.000"), where))
}

// event checks the id of one event of the session's history: one above the
// last, or for a gap (gapMissed > 0) the last one missed, where the run's
// gap rule allows one; holes of up to absorbable ids are events the client
// took without delivering. t.mu is held.
func (t *tally) event(id uint64, name string, gapMissed uint64) {
	first := t.firstEv
	t.firstEv = false
	want := t.last + 1
	if gapMissed > 0 {
		want = t.last + gapMissed
		t.st.Gaps++
		t.st.Missed += gapMissed
		t.gapRule(id, gapMissed, first)
		w := gapWindow{}
		for i := len(t.chats) - 1; i >= 0; i-- {
			if !t.chats[i].history {
				w.before = t.chats[i].id
				break
			}
		}
		t.gaps = append(t.gaps, w)
		t.pubGaps = append(t.pubGaps, len(t.pubs))
		t.signal()
	}
	switch hole := int64(id) - int64(want); {
	case hole == 0:
	case hole > 0 && hole <= int64(t.absorbable):
		t.absorbable -= int(hole)
	default:
		hint := ""
		if t.hint != nil {
			hint = t.hint()
		}
		t.violation("event %s has id %d after %d, want %d (%d ids of failed transfers may be missing)%s; trail:\n%s",
			name, id, t.last, want, t.absorbable, hint, t.tail())
	}
	t.last = id
	t.st.Events++
	t.eventAt = time.Now()
}

// gapRule reports a gap the run's rule does not allow. t.mu is held.
func (t *tally) gapRule(id, missed uint64, first bool) {
	switch t.shared.gaps {
	case gapsNever:
		t.violation("gap of %d at id %d, though every cut was far shorter than the replay window", missed, id)
	case gapsAfterKill:
		killed := t.shared.killedAt()
		switch {
		case killed.IsZero():
			t.violation("gap of %d at id %d, and no node died", missed, id)
		case !first || t.connAt.Before(killed):
			t.violation("gap of %d at id %d: not the first event of a connection opened after the kill (connected %s, kill %s)",
				missed, id, t.connAt.Format("15:04:05.000"), killed.Format("15:04:05.000"))
		case t.st.Gaps > 1:
			t.violation("gap of %d at id %d: the second gap of the session", missed, id)
		}
	}
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
		if n := len(t.gaps); n > 0 && t.gaps[n-1].after == 0 {
			t.gaps[n-1].after = id
		}
		t.chatAt = time.Now()
	}
	t.chats = append(t.chats, seenChat{id: id, text: text, history: history})
	t.st.Chats++
}

// published records one published event. t.mu is held.
func (t *tally) published(data string) {
	if t.lost {
		return
	}
	t.pubs = append(t.pubs, data)
	t.pubAt = time.Now()
	t.st.Published++
}

// inGap reports whether chat id may have been lost in a gap.
func (t *tally) inGap(id int64) bool {
	for _, g := range t.gaps {
		if id > g.before && (g.after == 0 || id < g.after) {
			return true
		}
	}
	return false
}

// checkChats compares the chats the session got with those POSTed: every
// one answered 202 exactly once (history replays included), under the id
// its POST answered, and live ones in order (chat); one with no answer at
// most once; a refused one never; nothing else. A chat may be missing only
// where a gap fell among the chats. It returns how many accepted chats it
// verified.
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
		switch {
		case count[text] == 1:
			verified++
		case count[text] == 0 && t.inGap(id):
		case count[text] == 0:
			if missing++; missing <= 5 {
				t.violation("chat %q (id %d, accepted) never arrived (gaps among the chats: %v)", text, id, t.gaps)
			}
		}
	}
	if missing > 5 {
		t.violation("… %d accepted chats never arrived in all", missing)
	}
	return verified
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

// lastHeard is when the last event, the last live chat and the last
// published event came.
func (t *tally) lastHeard() (event, chat, pub time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.eventAt, t.chatAt, t.pubAt
}

func (t *tally) stats() clientStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.st
}

func (t *tally) seen(text string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.ContainsFunc(t.chats, func(c seenChat) bool { return c.text == text })
}

func (t *tally) gotPublished(data string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Contains(t.pubs, data)
}

func (t *tally) violations() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append(slices.Clone(t.errs), onceCounts(t.once)...)
}

// onceCounts reports how often each kind of violation reported once came,
// where it came more than once.
func onceCounts(once map[string]int) []string {
	var out []string
	for kind, n := range once {
		if n > 1 {
			out = append(out, fmt.Sprintf("%s: %d times in all", kind, n))
		}
	}
	return out
}
