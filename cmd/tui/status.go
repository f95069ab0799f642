package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/xhrsse/xhrsse/pkg/client"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// rateWindow is how far back the events-per-second figure looks.
const rateWindow = 3 * time.Second

// noteTTL is how long a notice (a gap, a new session, a bye) stays shown.
const noteTTL = 20 * time.Second

// status is the model of the status line: which server, which session, the
// state of the connection and how many events a second arrive.
type status struct {
	st     Styles
	server string
	width  int

	session string // full id; shown shortened
	node    string // the cluster node serving the stream, if any
	state   string // "connecting", "connected", "reconnecting", ...
	attempt int
	level   int    // 0 good, 1 warn, 2 bad: the colour of state
	connErr string // why the connection is down; cleared once it is up

	note      string // the latest notable thing: a gap, a new session, ...
	noteLvl   int
	noteUntil time.Time

	// Events per second over rateWindow, in one-second buckets.
	buckets [4]int64
	bucketT int64 // the unix second of buckets[bucketT%len]
	rate    float64
}

func newStatus(st Styles, server string) status {
	return status{st: st, server: server, state: "connecting", level: 1}
}

// SetWidth sets the line's width.
func (s *status) SetWidth(w int) { s.width = w }

// SetSession records the current session id.
func (s *status) SetSession(id string) { s.session = id }

// SetNode records the cluster node serving the stream ("" from a single
// server).
func (s *status) SetNode(node string) { s.node = node }

// Dialing shows that the client cannot reach the server before any stream
// exists: the error of the last try and when the next one is.
func (s *status) Dialing(attempt int, err error, retry time.Duration) {
	s.state, s.attempt, s.level = "server unreachable", attempt, 2
	s.connErr = fmt.Sprintf("%s; retrying in %s", errText(err), retry.Round(100*time.Millisecond))
}

// Conn records a change of the stream's connection.
func (s *status) Conn(st client.ConnState, attempt int, err error, now time.Time) {
	s.attempt = attempt
	switch st {
	case client.Connecting:
		s.state, s.level = "connecting", 1
	case client.Connected:
		s.state, s.level, s.connErr = "connected", 0, ""
	case client.Resumed:
		s.state, s.level, s.connErr = "resumed", 0, ""
	case client.Reconnecting:
		s.state, s.level = "reconnecting", 1
	case client.NewSession:
		s.state, s.level, s.connErr = "new session", 1, ""
		s.Note("new session: the server had forgotten ours; tuning restored", 1, now)
		return
	case client.Failed:
		s.state, s.level = "disconnected", 2
	default:
		s.state, s.level = st.String(), 1
	}
	if err != nil {
		s.connErr = errText(err)
	}
}

// Note shows a notable event for a while; level 0 is informational, 1 a
// warning, 2 an error.
func (s *status) Note(text string, level int, now time.Time) {
	s.note, s.noteLvl, s.noteUntil = text, level, now.Add(noteTTL)
}

// ConnErr is why the connection is down ("" while it is up).
func (s *status) ConnErr() string { return s.connErr }

// Gaps notes that gap events said missed events could not be replayed.
func (s *status) Gaps(missed uint64, now time.Time) {
	s.Note(gapNote(missed, s.node != ""), 1, now)
}

// gapNote tells the user how much a gap swallowed. From a cluster the count
// may be an upper bound (docs/PROTOCOL.md "Clusters": after a node was
// lost, nobody knows how far it got), so it says so.
func gapNote(missed uint64, cluster bool) string {
	events := "events"
	if missed == 1 {
		events = "event"
	}
	if cluster {
		return fmt.Sprintf("gap: up to %d %s could not be replayed", missed, events)
	}
	return fmt.Sprintf("gap: %d %s could not be replayed", missed, events)
}

// Count adds n events that arrived at now.
func (s *status) Count(now time.Time, n int) {
	s.advance(now)
	s.buckets[s.bucketT%int64(len(s.buckets))] += int64(n)
}

// Tick recomputes events per second at now and drops an old note.
func (s *status) Tick(now time.Time) {
	if s.note != "" && now.After(s.noteUntil) {
		s.note = ""
	}
	s.advance(now)
	var sum int64
	for i := int64(1); i <= int64(rateWindow/time.Second); i++ {
		sum += s.buckets[(s.bucketT-i+int64(len(s.buckets)))%int64(len(s.buckets))]
	}
	s.rate = float64(sum) / rateWindow.Seconds()
}

func (s *status) advance(now time.Time) {
	sec := now.Unix()
	if s.bucketT == 0 {
		s.bucketT = sec
	}
	for s.bucketT < sec {
		s.bucketT++
		s.buckets[s.bucketT%int64(len(s.buckets))] = 0
		if sec-s.bucketT > int64(len(s.buckets)) { // long idle: jump
			s.buckets = [4]int64{}
			s.bucketT = sec
		}
	}
}

// View draws the line, cut to the width.
func (s *status) View() string {
	sep := s.st.StatusFaint.Render(" │ ")
	lvl := func(l int) lipgloss.Style {
		switch l {
		case 0:
			return s.st.StatusGood
		case 1:
			return s.st.StatusWarn
		}
		return s.st.StatusBad
	}
	state := s.state
	if s.attempt > 0 && s.level > 0 {
		state = fmt.Sprintf("%s (attempt %d)", s.state, s.attempt)
	}
	parts := []string{s.server}
	if s.session != "" {
		parts = append(parts, "session "+protocol.ShortID(s.session))
	}
	if s.node != "" && s.level == 0 {
		state += " via " + sanitize(s.node)
	}
	parts = append(parts, lvl(s.level).Render(state))
	if s.connErr != "" {
		parts = append(parts, lvl(max(s.level, 1)).Render(sanitize(s.connErr)))
	}
	if s.note != "" {
		parts = append(parts, lvl(s.noteLvl).Render(sanitize(s.note)))
	}
	if s.session != "" {
		parts = append(parts, fmt.Sprintf("%.1f ev/s", s.rate))
	}
	line := strings.Join(parts, sep)
	if s.width > 0 {
		line = lipgloss.NewStyle().MaxWidth(s.width).Render(line)
	}
	return line
}
