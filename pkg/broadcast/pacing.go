package broadcast

import (
	"context"
	"time"
)

// A Backlog reports how many bytes a stream's connection holds in the
// kernel that have not gone out on the wire yet (Linux: the socket's
// unsent queue). A link slower than the server fills that queue, and what
// sits in it, a bulk chunk usually, is ahead of every live event written
// after it. Zero means the link keeps up, or that nothing is known.
type Backlog func() int

type backlogKey struct{}

// WithBacklog returns ctx carrying b, the backlog of the connection a
// request came on; Stream.Run paces bulk by it. The HTTP server sets it
// once per connection (http.Server.ConnContext), so a stream over HTTP/2
// sees the queue of the connection its stream shares.
func WithBacklog(ctx context.Context, b Backlog) context.Context {
	return context.WithValue(ctx, backlogKey{}, b)
}

// startPacing takes the connection's backlog from ctx. Until its writes
// show otherwise the link counts as slow: the first run of chunks, written
// whole, would take a second on a slow link, and the stream learns its
// link only by writing.
func (st *Stream) startPacing(ctx context.Context) {
	st.pace.backlog, _ = ctx.Value(backlogKey{}).(Backlog)
	st.pace.slowAt = time.Now()
}

// A pacer is a stream's view of its link.
type pacer struct {
	backlog   Backlog       // the connection's unsent bytes; nil: unknown
	slowAt    time.Time     // when the link last showed itself slow
	holdSince time.Time     // when the current hold began; zero: none
	wait      time.Duration // until the hold's next look
	held      bool          // gather held the next chunk back
	timer     *time.Timer   // wakes a stream that held a chunk back
}

// linkBusy reports whether the stream's link is slower than the stream: a
// write since the last look had to wait (TCP_NOTSENT_LOWAT, see
// pkg/server, makes a write wait once a little is unsent), or one did
// within the last slowMemory. Then a write carries one bulk chunk, not a
// run of them, and in pieces, since a write in progress is what a live
// event that arrives meanwhile waits behind. Unsent bytes alone do not
// count: on a fast link they mean a client that is a moment behind, with
// plenty to read, and pieces would only cost system calls. The memory
// matters: on a saturated link bytes leave in bursts, as the receiver
// opens its window a segment at a time, and a write that falls just after
// one does not wait.
func (st *Stream) linkBusy(out *streamWriter) bool {
	p := &st.pace
	if p.backlog == nil {
		return false
	}
	now, took := time.Now(), out.took
	out.took = 0
	if took >= slowWrite {
		p.slowAt = now
		return true
	}
	return now.Sub(p.slowAt) < slowMemory
}

const (
	// slowMemory is how long a link that was slow counts as slow.
	slowMemory = time.Second
	// slowWrite is a write that waited for the link: a 256 KiB run of
	// chunks takes longer only on a link slower than about 12 MB/s (or on
	// a machine so busy that the stream's goroutine waited that long),
	// one chunk on a link slower than about 3 MB/s.
	slowWrite = 20 * time.Millisecond
)

// paceBytes is the most one write system call hands a slow link's socket.
// The kernel takes a write whole once the unsent bytes are below the
// low-water mark, up to a segment of 64 KiB, so a chunk written at once
// can lie ahead of the next event on top of the mark; in pieces it adds at
// most one piece. (TLS writes records of 16 KiB anyway.)
const paceBytes = 16 << 10

// pace makes the writes in pieces while the link is slow; it returns slow.
func (o *streamWriter) pace(slow bool) bool {
	o.piece = 0
	if slow {
		o.piece = paceBytes
	}
	return slow
}

// send writes b whole, or in pieces while the link is slow (pace).
func (o *streamWriter) send(b []byte) (int, error) {
	if o.piece == 0 {
		return o.w.Write(b)
	}
	n := 0
	for len(b) > 0 {
		k, err := o.w.Write(b[:min(len(b), o.piece)])
		n += k
		if err != nil {
			return n, err
		}
		b = b[k:]
	}
	return n, nil
}

// holdBulk reports whether the next bulk chunk must wait: the link is
// slow (linkBusy) and the socket still holds unsent bytes, so a chunk made
// now would only queue behind them, ahead of any live event that comes
// meanwhile. A timer wakes the stream to look again (an event wakes it
// sooner), and until then what is unsent but already on its way keeps the
// link busy. On a fast link nothing waits: there unsent bytes mean a
// client that is a moment behind, and a pause would only cost throughput.
func (st *Stream) holdBulk() bool {
	p := &st.pace
	p.held = false
	if p.backlog == nil || time.Since(p.slowAt) >= slowMemory || p.backlog() == 0 {
		p.holdSince = time.Time{}
		return false
	}
	// A socket that takes slowWrite to drain is a slow link too: a long
	// hold keeps the stream paced although it writes no chunk meanwhile.
	now := time.Now()
	if p.holdSince.IsZero() {
		p.holdSince, p.wait = now, minPaceCheck
	} else {
		p.wait = min(2*p.wait, maxPaceCheck)
		if now.Sub(p.holdSince) >= slowWrite {
			p.slowAt = now
		}
	}
	p.held = true
	if p.timer == nil {
		// Urgent: the chunk is due, and the stream's coalescing wait
		// (linger) must not hold it back further.
		p.timer = time.AfterFunc(p.wait, func() { st.raise(flagUrgent) })
	} else {
		p.timer.Reset(p.wait)
	}
	return true
}

// A stream holding a chunk back looks at its socket again after
// minPaceCheck, then after twice as long each time up to maxPaceCheck: a
// client a moment behind has read what was unsent within a millisecond, a
// slow link takes tens of them.
const (
	minPaceCheck = time.Millisecond
	maxPaceCheck = 8 * time.Millisecond
)

func (st *Stream) stopPace() {
	if st.pace.timer != nil {
		st.pace.timer.Stop()
	}
}
