package client

import (
	"bytes"
	"io"
)

// eventReader sits between a stream's response body and the r3labs parser
// (it replaces resp.Body in the ResponseValidator hook) and hands r3labs a
// stream it parses the way WHATWG HTML §9.2.6 says, which on its own it does
// not:
//
//   - Line ends. r3labs finds the end of an event by searching for "\r\r",
//     "\n\n", "\r\n\n", "\n\r\n" or "\r\n\r\n" but not "\n\r", so an LF
//     line followed by a CR-ended blank line does not end the event and two
//     events merge into one. Here every CR LF and lone CR becomes LF (a CR
//     ending one read and an LF starting the next are one line end), so
//     r3labs only ever sees LF.
//   - BOM. The spec strips one U+FEFF at the start of the stream; r3labs
//     keeps it, and the first field ("\uFEFFretry:" or "\uFEFFdata:") would
//     be ignored. Here it is removed.
//   - Incomplete events. bufio.Scanner calls r3labs' split function with
//     atEOF set on any read error and on EOF, and r3labs then returns
//     whatever is buffered as an event: a connection cut in the middle of an
//     event dispatches a truncated event (for a bulk chunk, broken JSON; for
//     a tick, some of its characters, with an id that a resume would then
//     skip). The spec discards an event not ended by a blank line. Here bytes
//     are released to r3labs only up to the last blank line; the rest waits
//     for its blank line and is dropped if the stream ends first
//     (io.ErrUnexpectedEOF is returned then, so Run reports it).
//   - Size. Every event, whether it arrives whole or in pieces, is bounded
//     by the maximum event size (ErrEventTooLarge after the events before
//     it), so memory is O(largest event) and r3labs' own limit, set a little
//     higher, never trips with its less telling bufio.ErrTooLong.
//
// It reads straight into its own buffer and normalizes there, so a stream
// costs one buffer of O(largest event), not a fixed read buffer besides: a
// soak or a test may hold thousands.
//
// onRead is called after each read that returned bytes (the idle watchdog).
type eventReader struct {
	src    io.ReadCloser
	onRead func()
	limit  int

	buf   []byte // normalized; buf[off:ready] may be released, buf[ready:] waits
	off   int
	ready int

	bom int  // BOM bytes matched at the start; -1 once past it
	cr  bool // the last byte read was CR: an LF that follows is its pair
	err error
}

var bom = []byte("\xEF\xBB\xBF")

const (
	// minRead is the least room a read gets; the buffer starts this small.
	minRead = 4 << 10
	// headroom separates the bytes read from the normalized bytes before
	// them: normalizing never makes more bytes than it reads, except for a
	// BOM prefix that turned out not to be one (at most two bytes, once).
	headroom = 3
	// shrinkAbove: a buffer grown for a big event is dropped once empty.
	shrinkAbove = 256 << 10
)

func newEventReader(src io.ReadCloser, limit int, onRead func()) *eventReader {
	return &eventReader{src: src, onRead: onRead, limit: limit, buf: make([]byte, 0, minRead+headroom)}
}

func (r *eventReader) Read(p []byte) (int, error) {
	for r.off == r.ready {
		if r.err != nil {
			return 0, r.err
		}
		start := len(r.buf)
		if cap(r.buf)-start < minRead+headroom {
			nb := make([]byte, start, max(2*cap(r.buf), start+minRead+headroom))
			copy(nb, r.buf)
			r.buf = nb
		}
		n, err := r.src.Read(r.buf[start+headroom : cap(r.buf)])
		if n > 0 {
			if r.onRead != nil {
				r.onRead()
			}
			r.feed(start, n)
		}
		switch {
		case r.err != nil: // set by feed: an event too large
		case err == io.EOF && len(r.buf) > r.ready:
			r.err = io.ErrUnexpectedEOF // an event without its blank line
		case err != nil:
			r.err = err
		}
	}
	n := copy(p, r.buf[r.off:r.ready])
	r.off += n
	if r.off == r.ready {
		// Everything released: move the waiting part to the front.
		k := copy(r.buf, r.buf[r.ready:])
		r.buf = r.buf[:k]
		r.off, r.ready = 0, 0
		if cap(r.buf) > shrinkAbove && k < minRead {
			r.buf = append(make([]byte, 0, minRead+headroom), r.buf...)
		}
	}
	return n, nil
}

// feed normalizes the n bytes read at buf[start+headroom:] down to
// buf[start:] and moves ready past the events they complete.
func (r *eventReader) feed(start, n int) {
	all := r.buf[:cap(r.buf)]
	in := all[start+headroom : start+headroom+n]
	w := start
	if r.bom < 0 && !r.cr && bytes.IndexByte(in, '\r') < 0 {
		w += copy(all[w:], in) // the usual case: LF only
	} else {
		i := 0
		for ; r.bom >= 0 && i < len(in); i++ {
			if in[i] != bom[r.bom] {
				// Not a BOM after all: what matched so far is data.
				w += copy(all[w:], bom[:r.bom])
				r.bom = -1
				break
			}
			if r.bom++; r.bom == len(bom) {
				r.bom = -1
				i++
				break
			}
		}
		for _, b := range in[i:] {
			if r.cr {
				r.cr = false
				if b == '\n' {
					continue
				}
			}
			if b == '\r' {
				r.cr = true
				b = '\n'
			}
			all[w] = b
			w++
		}
	}
	r.buf = all[:w]
	r.advance(start)
}

// advance moves ready over every event completed in buf[start:]: an LF
// after an LF (or at buf[0], which follows released bytes that end in LF, or
// is the start of the stream) ends an event. An event longer than the limit
// stops it with ErrEventTooLarge; the events before it are still released.
func (r *eventReader) advance(start int) {
	for i := start; r.err == nil; {
		j := bytes.IndexByte(r.buf[i:], '\n')
		if j < 0 {
			break
		}
		i += j
		if i == 0 || r.buf[i-1] == '\n' {
			if i+1-r.ready > r.limit {
				r.err = ErrEventTooLarge
				return
			}
			r.ready = i + 1
		}
		i++
	}
	if len(r.buf)-r.ready > r.limit {
		r.err = ErrEventTooLarge
	}
}

func (r *eventReader) Close() error { return r.src.Close() }
