package loadgen

// IDStats counts what a stream's event ids revealed. PROTOCOL.md numbers a
// session's events 1, 2, 3, … with no holes; the connection-level events
// (session, bye) carry the stream's position instead. The baselines number
// their events the same way, so one tracker checks all three servers.
type IDStats struct {
	// Gaps counts holes in the numbering the server did not announce, and
	// Missing the ids that fell into them: events lost silently.
	Gaps    int64 `json:"gaps"`
	Missing int64 `json:"missing_ids"`
	// Duplicates counts an id seen twice in a row; OutOfOrder an id lower
	// than one already seen.
	Duplicates int64 `json:"duplicates"`
	OutOfOrder int64 `json:"out_of_order"`
	// ServerGaps counts gap events (the server said it dropped events) and
	// ServerMissed the events they reported missed.
	ServerGaps   int64 `json:"server_gap_events"`
	ServerMissed int64 `json:"server_missed"`
	// NoID counts events whose id was absent or not a decimal number.
	NoID int64 `json:"no_id"`
}

// add accumulates o into s.
func (s *IDStats) add(o IDStats) {
	s.Gaps += o.Gaps
	s.Missing += o.Missing
	s.Duplicates += o.Duplicates
	s.OutOfOrder += o.OutOfOrder
	s.ServerGaps += o.ServerGaps
	s.ServerMissed += o.ServerMissed
	s.NoID += o.NoID
}

// Clean reports whether nothing was lost, repeated or reordered.
func (s IDStats) Clean() bool {
	return s.Gaps == 0 && s.Duplicates == 0 && s.OutOfOrder == 0 && s.ServerGaps == 0
}

// idTracker follows one stream's ids. It is owned by the stream's reader.
type idTracker struct {
	last  uint64
	seen  bool
	stats IDStats
}

// position records a connection-level event (session): the stream continues
// after id. It is not a session event, so it is not checked.
func (t *idTracker) position(id uint64) {
	t.last, t.seen = id, true
}

// event checks the id of a session event against the last one.
func (t *idTracker) event(id uint64) {
	if !t.seen {
		t.last, t.seen = id, true
		return
	}
	switch {
	case id == t.last+1:
	case id > t.last+1:
		t.stats.Gaps++
		t.stats.Missing += int64(id - t.last - 1)
	case id == t.last:
		t.stats.Duplicates++
	default:
		t.stats.OutOfOrder++
	}
	if id > t.last {
		t.last = id
	}
}

// gap records a gap event: its id is the last missed id, so the numbering
// continues after it without a hole.
func (t *idTracker) gap(id uint64, missed uint64) {
	t.stats.ServerGaps++
	t.stats.ServerMissed += int64(missed)
	if !t.seen || id > t.last {
		t.last, t.seen = id, true
	}
}

// noID records an event whose id could not be read.
func (t *idTracker) noID() { t.stats.NoID++ }
