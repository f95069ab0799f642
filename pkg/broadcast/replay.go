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
//
// It is held in blocks of blockSize slots rather than one array that
// doubles: growing copies nothing and leaves no garbage behind, and the
// block that eviction empties is kept (spare) for the next one needed, so a
// session that has reached its window allocates nothing more. With doubling,
// a session reaching the 1024-event floor had allocated 16 KiB of slots, half
// of it garbage that stays in the heap (and the RSS) until a collection,
// which a server with little else to allocate runs seldom; in blocks it is
// 8.5-9 KiB, all of it in use.
type ring struct {
	blocks []ringBlock // blocks[i] holds ids base+i*blockSize …
	base   uint64      // first id of blocks[0]; a multiple of blockSize
	first  uint64      // id of the oldest event held
	next   uint64      // id the next event gets
	spare  ringBlock   // an emptied block, for the next one needed
}

// blockSize is the slots in a ring block: 512 bytes of pointers, so a ring
// wastes at most one partly used block at either end.
const blockSize = 64

// A ringBlock is a slice of blockSize slots, not a pointer to an array: a
// slot is reached through the slice's header, held in blocks, while a
// pointer is checked for nil by a load from the block's first slots. On
// the fan-out path each session's ring is cold, and that load was a second
// cache miss per push, on a line the push does not otherwise touch.
type ringBlock []*event

func newRing() ring {
	return ring{first: 1, next: 1}
}

func (r *ring) len() int { return int(r.next - r.first) }

// push appends ev and returns its id, first evicting what the window no
// longer covers.
func (r *ring) push(ev *event, o *options) uint64 {
	for n := r.len(); n > 0; n-- {
		// The oldest slot is looked at only past the floor: it is in
		// another cache line than the newest, and a push that touches it
		// for nothing pays a miss per event and session.
		if n < o.replayMax && (n < o.replayEvents || ev.at-(*r.slot(r.first)).at < int64(o.replayAge)) {
			break
		}
		*r.slot(r.first) = nil
		r.first++
		if r.first-r.base == blockSize {
			r.dropFirstBlock()
		}
	}
	if int(r.next-r.base) >= len(r.blocks)*blockSize {
		b := r.spare
		if b == nil {
			b = make(ringBlock, blockSize)
		}
		r.spare = nil
		r.blocks = append(r.blocks, b)
	}
	id := r.next
	*r.slot(id) = ev
	r.next++
	return id
}

// dropFirstBlock retires blocks[0], which eviction has emptied, as the spare.
func (r *ring) dropFirstBlock() {
	r.spare = r.blocks[0]
	n := copy(r.blocks, r.blocks[1:])
	r.blocks[n] = nil
	r.blocks = r.blocks[:n]
	r.base += blockSize
}

// slot is where id's event is; id must be in base..base+len(blocks)*blockSize-1.
func (r *ring) slot(id uint64) **event {
	off := id - r.base
	return &r.blocks[off/blockSize][off%blockSize]
}

// get returns the event with the given id, or nil if it is not held.
func (r *ring) get(id uint64) *event {
	if id < r.first || id >= r.next {
		return nil
	}
	return *r.slot(id)
}

// skipTo drops everything and makes id the next id, for a client that knows
// of ids this session never issued (it outlived a restart of its counter).
func (r *ring) skipTo(id uint64) {
	for i, b := range r.blocks {
		clear(b)
		if r.spare == nil {
			r.spare = b
		}
		r.blocks[i] = nil
	}
	r.blocks = r.blocks[:0]
	r.first, r.next = id, id
	r.base = id - id%blockSize
}
