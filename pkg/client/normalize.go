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
//   - Size. The withheld part of one event is bounded by the maximum event
//     size (ErrEventTooLarge), so memory is O(largest event).
//
// onRead is called after each read that returned bytes (the idle watchdog).
type eventReader struct {
	src    io.ReadCloser
	onRead func()
	limit  int

	buf   []byte // normalized; buf[off:ready] may be released, buf[ready:] waits
	off   int
	ready int
	tmp   []byte

	bom    int  // BOM bytes matched at the start; -1 once past it
	cr     bool // the last byte read was CR: an LF that follows is its pair
	prevLF bool // the last normalized byte was LF (true at the start)
	err    error
}

var bom = []byte("\xEF\xBB\xBF")

func newEventReader(src io.ReadCloser, limit int, onRead func()) *eventReader {
	return &eventReader{src: src, onRead: onRead, limit: limit, prevLF: true, tmp: make([]byte, 32<<10)}
}

func (r *eventReader) Read(p []byte) (int, error) {
	for r.off == r.ready {
		if r.err != nil {
			return 0, r.err
		}
		n, err := r.src.Read(r.tmp)
		if n > 0 {
			if r.onRead != nil {
				r.onRead()
			}
			r.feed(r.tmp[:n])
		}
		if len(r.buf)-r.ready > r.limit {
			r.err = ErrEventTooLarge
		} else if err != nil {
			if err == io.EOF && len(r.buf) > r.ready {
				err = io.ErrUnexpectedEOF // an event without its blank line
			}
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
	}
	return n, nil
}

// feed normalizes in onto buf and moves ready past the last blank line.
func (r *eventReader) feed(in []byte) {
	for r.bom >= 0 && len(in) > 0 {
		if in[0] != bom[r.bom] {
			// Not a BOM after all: what matched so far is data.
			r.feedLines(bom[:r.bom])
			r.bom = -1
			break
		}
		in = in[1:]
		r.bom++
		if r.bom == len(bom) {
			r.bom = -1
		}
	}
	r.feedLines(in)
}

func (r *eventReader) feedLines(in []byte) {
	if len(in) == 0 {
		return
	}
	if !r.cr && bytes.IndexByte(in, '\r') < 0 {
		// The usual case: LF only. Append and find the last blank line.
		start := len(r.buf)
		r.buf = append(r.buf, in...)
		if r.prevLF && in[0] == '\n' {
			r.ready = start + 1
		}
		if i := bytes.LastIndex(r.buf[start:], []byte("\n\n")); i >= 0 {
			r.ready = start + i + 2
		}
		r.prevLF = in[len(in)-1] == '\n'
		return
	}
	for _, b := range in {
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
		r.buf = append(r.buf, b)
		if b == '\n' {
			if r.prevLF {
				r.ready = len(r.buf)
			}
			r.prevLF = true
		} else {
			r.prevLF = false
		}
	}
}

func (r *eventReader) Close() error { return r.src.Close() }
