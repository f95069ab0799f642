package broadcast

// An event is one entry of a session's history. Broadcast events (ticks,
// chat) are encoded once and the same *event sits in every listener's ring;
// only the "id:" line differs per session and is written by the stream.
// An event is immutable once published.
type event struct {
	body []byte // "event: …\ndata: …\n\n"
	at   int64  // unix nanoseconds, for the replay window

	// urgent events (chat) are written at once: a stream holding its writes
	// back to coalesce them (the flush interval) stops waiting for one.
	urgent bool

	// A bulk chunk carries no body: the stream regenerates its bytes from
	// the transfer when it writes (or replays) it, so a session never holds
	// a transfer's data.
	bulk *transfer
	seq  int
}

// ring is a session's history and its send queue at once: events numbered
// first..next-1, oldest evicted first. It keeps at least minEvents events
// and, beyond that, every event younger than maxAge, up to maxEvents.
// Its session's mutex guards it.
type ring struct {
	buf   []*event // len is a power of two
	first uint64   // id of the oldest event held
	next  uint64   // id the next event gets
}

func newRing() ring {
	return ring{buf: make([]*event, 16), first: 1, next: 1}
}

func (r *ring) len() int { return int(r.next - r.first) }

// push appends ev and returns its id, first evicting what the window no
// longer covers.
func (r *ring) push(ev *event, o *options) uint64 {
	for n := r.len(); n > 0; n-- {
		oldest := r.buf[r.first&uint64(len(r.buf)-1)]
		if n < o.replayMax && (n < o.replayEvents || ev.at-oldest.at < int64(o.replayAge)) {
			break
		}
		r.buf[r.first&uint64(len(r.buf)-1)] = nil
		r.first++
	}
	if r.len() == len(r.buf) {
		r.grow(2 * len(r.buf))
	}
	id := r.next
	r.buf[id&uint64(len(r.buf)-1)] = ev
	r.next++
	return id
}

// get returns the event with the given id, or nil if it is not held.
func (r *ring) get(id uint64) *event {
	if id < r.first || id >= r.next {
		return nil
	}
	return r.buf[id&uint64(len(r.buf)-1)]
}

// skipTo drops everything and makes id the next id, for a client that knows
// of ids this session never issued (it outlived a restart of its counter).
func (r *ring) skipTo(id uint64) {
	clear(r.buf)
	r.first, r.next = id, id
}

func (r *ring) grow(n int) {
	nb := make([]*event, n)
	for id := r.first; id < r.next; id++ {
		nb[id&uint64(n-1)] = r.buf[id&uint64(len(r.buf)-1)]
	}
	r.buf = nb
}
