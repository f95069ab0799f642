package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// An event is one dispatched SSE event as a stream reader needs it. Name and
// Data are the reader's own buffers, valid until its next call to next.
type event struct {
	name  []byte // empty for an event without an event field ("message")
	data  []byte // the data buffer without its final LF
	id    uint64 // the last event id in force, as a decimal number
	hasID bool   // false: no id in force, or not a decimal uint64
}

// eventReader turns a stream's HTTP body into events at the least cost a
// stream can have, since the load generator shares the machine with the
// server it measures: one buffer per stream that the connection is read
// into, the chunked framing removed in place, lines split in place, and the
// id parsed straight into a number. Reading an event allocates nothing once
// the buffers have grown to the stream's largest event.
//
// It follows the WHATWG event-stream rules for every field it reads (CR, LF
// and CRLF line ends, a BOM, comments, multi-line data, ids persisting
// across events, ids with NUL ignored) and ignores the rest (retry), as
// protocol.Decoder does; it does not copy an id into a string for every
// event, which is most of what Decoder costs per tick.
type eventReader struct {
	src io.Reader
	max int // the longest line accepted, without its line end

	// buf holds [0,r) consumed, [r,e) body bytes not yet split into lines,
	// [e,d) free (the chunk framing removed), [d,w) bytes read but not
	// yet de-chunked (a chunk header cut by the end of a read).
	buf        []byte
	r, e, d, w int
	scanned    int // buf[r:r+scanned] is known to hold no line end
	eof        bool
	err        error         // sticky: returned by every later call
	count      *atomic.Int64 // body bytes (chunk framing not counted); nil: not counted
	started    bool          // the first line (which may carry a BOM) is past

	// Chunked transfer coding (RFC 9112 §7.1): chunked is set when the
	// body has it; chunkLeft is the current chunk's data still to come;
	// chunkEnd is set while the CRLF after a chunk's data is awaited.
	chunked   bool
	chunkLeft int
	chunkEnd  bool

	// The event being built (over as many calls as its lines take to
	// arrive), and the spec's last event ID buffer.
	ev         event
	hasData    bool
	dispatched bool // ev was returned: start a new one
	idBuf      uint64
	idOK       bool
}

// Sizes of an eventReader's buffer: it starts at minRead and doubles while
// a line does not fit, up to the line limit and room for chunk framing.
const (
	minRead      = 8 << 10
	maxChunkLine = 4 << 10 // a chunk header: size and extensions
)

// errChunked: the chunked framing is broken.
var errChunked = errors.New("loadgen: malformed chunked body")

// newEventReader reads events from src, whose first bytes are already read
// into pending (what the response parser buffered past the headers).
// chunked says whether the body has the chunked transfer coding; count, if
// not nil, counts the body's bytes as they are read.
func newEventReader(src io.Reader, pending []byte, chunked bool, maxLine int, count *atomic.Int64) *eventReader {
	er := &eventReader{src: src, max: maxLine, chunked: chunked, count: count}
	er.buf = make([]byte, max(minRead, 2*len(pending)))
	er.w = copy(er.buf, pending)
	er.err = er.dechunk()
	return er
}

// next returns the next dispatched event. At the end of the body it returns
// io.EOF (an event not ended by a blank line is discarded, as the spec
// says); a line longer than the limit ends reading with
// protocol.ErrEventTooLarge; read errors are returned as they are.
func (er *eventReader) next() (*event, error) {
	ev := &er.ev
	if er.dispatched {
		ev.name, ev.data, er.hasData, er.dispatched = ev.name[:0], ev.data[:0], false, false
	}
	for {
		line, ok, err := er.line()
		if err != nil {
			return nil, err
		}
		if !ok {
			if err := er.fill(); err != nil {
				return nil, err
			}
			continue
		}
		if !er.started {
			er.started = true
			line = bytes.TrimPrefix(line, []byte("\xEF\xBB\xBF"))
		}
		if len(line) == 0 {
			ev.id, ev.hasID = er.idBuf, er.idOK
			if !er.hasData {
				ev.name = ev.name[:0]
				continue
			}
			ev.data = ev.data[:len(ev.data)-1]
			er.dispatched = true
			return ev, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value := protocol.SplitField(line)
		switch string(field) {
		case "event":
			ev.name = append(ev.name[:0], value...)
		case "data":
			ev.data = append(ev.data, value...)
			ev.data = append(ev.data, '\n')
			er.hasData = true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				er.idBuf, er.idOK = parseID(value)
			}
		}
	}
}

// line returns the next whole line of the body, without its line end, and
// consumes it; ok is false when more input is needed. The line is valid
// until the next fill.
func (er *eventReader) line() (line []byte, ok bool, err error) {
	if er.err != nil {
		return nil, false, er.err
	}
	rest := er.buf[er.r:er.e]
	i := indexLineEnd(rest[er.scanned:])
	if i >= 0 {
		i += er.scanned
	}
	if i > er.max || (i < 0 && len(rest) > er.max) {
		er.err = protocol.ErrEventTooLarge
		return nil, false, er.err
	}
	n := i + 1 // the line and its line end
	switch {
	case i < 0:
		er.scanned = len(rest)
		return nil, false, nil
	case rest[i] == '\n':
	case i+1 < len(rest):
		if rest[i+1] == '\n' {
			n++
		}
	case !er.eof:
		// A CR at the end of what has arrived may be half of a CR LF.
		er.scanned = i
		return nil, false, nil
	}
	er.r += n
	er.scanned = 0
	return rest[:i], true, nil
}

// fill reads more of the body: it makes room in buf (moving what is unread
// to its start, or growing it), reads once and removes the chunk framing.
// It returns io.EOF once the body has ended and every line is consumed, and
// errWouldBlock, not kept, when a poller's socket has nothing for now.
func (er *eventReader) fill() error {
	if er.eof {
		return io.EOF // what is left is a line the body cut off
	}
	if er.r > 0 {
		n := copy(er.buf, er.buf[er.r:er.e])
		m := copy(er.buf[n:], er.buf[er.d:er.w])
		er.r, er.e, er.d, er.w = 0, n, n, n+m
	} else if er.e < er.d {
		m := copy(er.buf[er.e:], er.buf[er.d:er.w])
		er.d, er.w = er.e, er.e+m
	}
	if er.w == len(er.buf) {
		if len(er.buf) >= er.max+2+maxChunkLine {
			er.err = protocol.ErrEventTooLarge
			return er.err
		}
		grown := make([]byte, min(2*len(er.buf), er.max+2+maxChunkLine))
		copy(grown, er.buf[:er.w])
		er.buf = grown
	}
	n, err := er.src.Read(er.buf[er.w:])
	er.w += n
	if err := er.dechunk(); err != nil {
		er.err = err
		return err
	}
	switch {
	case errors.Is(err, errWouldBlock):
		return err // nothing more for now: the next call reads again
	case err == io.EOF && er.chunked:
		er.err = io.ErrUnexpectedEOF // the last chunk never came
		return er.err
	case err == io.EOF:
		er.eof = true
	case err != nil:
		er.err = err
		return err
	}
	return nil
}

// dechunk moves the body bytes of [d,w) down to e, dropping the chunk
// framing; a chunk header or CRLF cut by the end of the read waits in
// [d,w). The last chunk (size 0) ends the body: its trailers are not read.
func (er *eventReader) dechunk() error {
	if !er.chunked {
		er.counted(er.w - er.d)
		er.e, er.d = er.w, er.w
		return nil
	}
	for er.d < er.w && !er.eof {
		switch {
		case er.chunkLeft > 0:
			n := min(er.chunkLeft, er.w-er.d)
			copy(er.buf[er.e:], er.buf[er.d:er.d+n])
			er.e, er.d, er.chunkLeft = er.e+n, er.d+n, er.chunkLeft-n
			er.counted(n)
			er.chunkEnd = er.chunkLeft == 0
		case er.chunkEnd:
			if er.w-er.d < 2 {
				return nil
			}
			if er.buf[er.d] != '\r' || er.buf[er.d+1] != '\n' {
				return errChunked
			}
			er.d += 2
			er.chunkEnd = false
		default:
			i := bytes.IndexByte(er.buf[er.d:er.w], '\n')
			if i < 0 {
				if er.w-er.d > maxChunkLine {
					return errChunked
				}
				return nil
			}
			size, err := parseChunkSize(er.buf[er.d : er.d+i])
			if err != nil {
				return err
			}
			er.d += i + 1
			if size == 0 {
				er.eof = true
				er.chunked = false // the body is over; what follows is not read
				er.d = er.w
				return nil
			}
			er.chunkLeft = size
		}
	}
	return nil
}

func (er *eventReader) counted(n int) {
	if er.count != nil && n > 0 {
		er.count.Add(int64(n))
	}
}

// parseChunkSize reads a chunk header: hexadecimal digits, optional
// extensions after ';', CRLF (the LF already cut off).
func parseChunkSize(line []byte) (int, error) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 8 {
		return 0, fmt.Errorf("%w: chunk size %q", errChunked, line)
	}
	n := 0
	for _, c := range line {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | int(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | int(c-'a'+10)
		case 'A' <= c && c <= 'F':
			n = n<<4 | int(c-'A'+10)
		default:
			return 0, fmt.Errorf("%w: chunk size %q", errChunked, line)
		}
	}
	return n, nil
}

// parseID reads an id field as a decimal uint64, as strconv.ParseUint(s,
// 10, 64) would, without making a string of it.
func parseID(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false // overflow
		}
		n = n*10 + d
	}
	return n, true
}

// indexLineEnd returns the index of the first CR or LF in b, or -1. Two
// vectorised IndexByte calls beat one loop over the bytes.
func indexLineEnd(b []byte) int {
	lf := bytes.IndexByte(b, '\n')
	if lf < 0 {
		lf = len(b)
	}
	if cr := bytes.IndexByte(b[:lf], '\r'); cr >= 0 {
		return cr
	}
	if lf == len(b) {
		return -1
	}
	return lf
}
