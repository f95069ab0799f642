package broadcast

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// smallBuf is the write buffer a stream takes from bufPool. Buffers no larger
// than maxPooled go back to the pool when the stream goes idle, so an idle
// stream holds no buffer at all: memory per stream is the cost that grows
// with the number of streams, and at any moment only the streams being
// written need one.
const (
	smallBuf  = 1024
	maxPooled = 4 * smallBuf
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, smallBuf); return &b }}

// A TryWriter is a stream's ResponseWriter that can also write without
// waiting for its connection. A chat's fan-out writes a parked stream
// through it (Stream.writeDirect); pkg/server's HTTP/1.1 streams over TCP
// offer it.
type TryWriter interface {
	// TryWrite sends p as Write would, but never waits: n is how much of
	// p went out. When n < len(p) and err is nil, the writer keeps the
	// rest, and Drain must send it before any other Write.
	TryWrite(p []byte) (n int, err error)
	// Drain sends what TryWrite kept, waiting as Write does, and returns
	// how much of that TryWrite's p it sent; or TryWrite's error.
	Drain() (n int, err error)
}

// A streamWriter is a stream's side of the ResponseWriter: the buffer being
// filled, the lazy write deadline and the flush, resolved once.
type streamWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	flush   func() error // nil when w cannot flush (nor buffers)
	try     TryWriter    // w, when it can write without blocking (and does not buffer)
	stats   *counters
	timeout time.Duration

	buf     []byte  // what the next write sends; nil while idle
	box     *[]byte // bufPool's holder for buf
	scratch []byte  // a bulk chunk's raw bytes

	deadline  time.Time     // the write deadline in force
	lastWrite *atomic.Int64 // when the last write began, unix nanoseconds

	piece int           // write in pieces of this many bytes; 0: whole (pacing.go)
	took  time.Duration // the longest write since pacing last looked
}

// newStreamWriter writes to w for a stream of h, noting the time of each
// write in lastWrite (the stream's, which its wakes read).
func newStreamWriter(w http.ResponseWriter, h *Hub, lastWrite *atomic.Int64) *streamWriter {
	o := &streamWriter{
		w: w, rc: http.NewResponseController(w), flush: flusherOf(w),
		stats: &h.stats, timeout: h.opts.writeTimeout, lastWrite: lastWrite,
	}
	if t, ok := w.(TryWriter); ok && o.flush == nil {
		o.try = t
	}
	return o
}

// flusherOf finds w's flush the way http.ResponseController.Flush does, once
// per stream instead of once per write.
func flusherOf(w http.ResponseWriter) func() error {
	for {
		switch t := w.(type) {
		case interface{ FlushError() error }:
			return t.FlushError
		case http.Flusher:
			return func() error { t.Flush(); return nil }
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return nil
		}
	}
}

// take makes sure there is a buffer to append to.
func (o *streamWriter) take() {
	if o.buf == nil {
		o.box = bufPool.Get().(*[]byte)
		o.buf = (*o.box)[:0]
	}
}

// idle gives the buffers up while the stream waits. One that a replay or a
// bulk chunk grew is left to the collector rather than pooled.
func (o *streamWriter) idle() {
	if o.buf != nil {
		if cap(o.buf) <= maxPooled {
			*o.box = o.buf[:0]
			bufPool.Put(o.box)
		}
		o.buf, o.box = nil, nil
	}
	o.scratch = nil
}

// write sends buf and flushes it, then empties buf.
func (o *streamWriter) write() error {
	// Moving a deadline costs more than a small write, so it is lazy: it
	// moves only when less than half of it is left (a blocked write is
	// ended after between half and all of the write timeout).
	now := time.Now()
	if err := o.arm(now); err != nil {
		return err
	}
	n, err := o.send(o.buf)
	o.stats.bytesOut.Add(int64(n))
	if err == nil && o.flush != nil {
		// A writer that cannot flush does not buffer either.
		if err = o.flush(); errors.Is(err, http.ErrNotSupported) {
			err = nil
		}
	}
	o.buf = o.buf[:0]
	o.took = max(o.took, time.Since(now))
	if err != nil {
		return fmt.Errorf("stream: write: %w", err)
	}
	return nil
}

// arm moves the write deadline when less than half of it is left, and
// notes now as the time of the last write.
func (o *streamWriter) arm(now time.Time) error {
	if o.deadline.Sub(now) < o.timeout/2 {
		o.deadline = now.Add(o.timeout)
		if err := o.rc.SetWriteDeadline(o.deadline); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return fmt.Errorf("stream: deadline: %w", err)
		}
	}
	o.lastWrite.Store(now.UnixNano())
	return nil
}

// tryWrite sends buf without waiting (o.try must be set) and empties buf.
// It reports whether all of it went out; the connection keeps the rest,
// or the error, for drain.
func (o *streamWriter) tryWrite() (all bool, err error) {
	// The deadline is armed here too: an expired one would fail the
	// non-blocking write, and the blocking write after it.
	if err := o.arm(time.Now()); err != nil {
		return false, err
	}
	n, err := o.try.TryWrite(o.buf)
	o.stats.bytesOut.Add(int64(n))
	all = n == len(o.buf)
	o.buf = o.buf[:0]
	return all && err == nil, err
}

// drain sends, with the blocking write and its deadline, what a tryWrite
// left with the connection.
func (o *streamWriter) drain() error {
	now := time.Now()
	if err := o.arm(now); err != nil {
		return err
	}
	n, err := o.try.Drain()
	o.stats.bytesOut.Add(int64(n))
	o.took = max(o.took, time.Since(now))
	if err != nil {
		return fmt.Errorf("stream: write: %w", err)
	}
	return nil
}

// clearDeadline lifts the write deadline, for the connection's next request.
func (o *streamWriter) clearDeadline() {
	if !o.deadline.IsZero() {
		_ = o.rc.SetWriteDeadline(time.Time{})
	}
}
