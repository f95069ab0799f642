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

func backlogFrom(ctx context.Context) Backlog {
	b, _ := ctx.Value(backlogKey{}).(Backlog)
	return b
}

// linkBusy reports whether the stream's link is slower than the stream:
// a write since the last look had to wait (the socket was full: TCP_NOTSENT_LOWAT, see
// pkg/server, makes a write wait once a little is unsent), or the socket
// holds unsent bytes now, or either was so within the last slowMemory.
// Then a write carries one bulk chunk, not a run of them, and in pieces,
// since a write in progress is what a live event that arrives meanwhile
// waits behind. The memory matters: on a saturated link the unsent bytes
// leave in bursts, as the receiver opens its window a segment at a time,
// and a look that happens to fall just after one sees none.
func (st *Stream) linkBusy(out *streamWriter) bool {
	if st.backlog == nil {
		return false
	}
	now, took := time.Now(), out.took
	out.took = 0
	if took >= slowWrite || st.backlog() > 0 {
		st.slowAt = now
		return true
	}
	return now.Sub(st.slowAt) < slowMemory
}

const (
	// slowMemory is how long a link that was slow counts as slow.
	slowMemory = time.Second
	// slowWrite is a write that waited for the link: a 256 KiB run of
	// chunks takes longer only on a link slower than about 25 MB/s.
	slowWrite = 10 * time.Millisecond
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

// holdBulk reports whether the next bulk chunk must wait: the socket
// still holds unsent bytes, so a chunk made now would only queue behind
// them, ahead of any live event that comes meanwhile. The stream looks
// again after paceCheck (an event wakes it sooner). What is unsent but
// already on its way keeps the link busy meanwhile; on a fast link the
// socket is empty whenever the stream looks, and nothing waits.
func (st *Stream) holdBulk() bool {
	st.held = false
	if st.backlog == nil || st.backlog() == 0 {
		return false
	}
	st.held = true
	st.slowAt = time.Now()
	if st.paceT == nil {
		// Urgent: the chunk is due, and the stream's coalescing wait
		// (linger) must not hold it back further.
		st.paceT = time.AfterFunc(paceCheck, func() { st.raise(flagUrgent) })
	} else {
		st.paceT.Reset(paceCheck)
	}
	return true
}

// paceCheck is how often a stream holding a chunk back looks at its socket.
const paceCheck = 5 * time.Millisecond

func (st *Stream) stopPace() {
	if st.paceT != nil {
		st.paceT.Stop()
	}
}
