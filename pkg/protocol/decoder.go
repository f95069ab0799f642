package protocol

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
)

// ErrEventTooLarge is returned by Decoder.Next when one line exceeds the
// decoder's limit.
var ErrEventTooLarge = errors.New("protocol: event too large")

// A Message is one dispatched SSE event, as the WHATWG event-stream
// interpretation defines it.
type Message struct {
	// ID is the last event id in force when the event was dispatched; it
	// persists across events that carry no id field.
	ID string
	// Name is the event type; "message" when the event had no event field.
	Name string
	// Data is the data buffer with its final LF removed.
	Data string
}

// A Decoder parses a text/event-stream following WHATWG HTML §9.2.6: an
// optional UTF-8 BOM, CR, LF or CRLF line ends, comments, multi-line data,
// id persistence (ids with NUL are ignored) and retry. The Go client's tests,
// the test toolkit and the fuzz targets read streams with it. It works on
// bytes: invalid UTF-8 is passed through rather than replaced with U+FFFD as
// a browser would.
type Decoder struct {
	sc *bufio.Scanner
	// Retry is the last valid retry value seen, in milliseconds; -1 if none.
	Retry int

	// idBuf is the spec's "last event ID buffer", set by each id field;
	// lastID is the event source's "last event ID string", which takes the
	// buffer's value only when a blank line ends an event. An id in an event
	// cut off by the end of the stream therefore never becomes the
	// Last-Event-ID: the client did not receive that event.
	idBuf   string
	lastID  string
	started bool

	// data is the data buffer, kept between events so that decoding an
	// event costs one allocation for its data, not one per line.
	data []byte
	// names holds the event names seen so far (a few per stream), so that
	// each event does not allocate its name again.
	names map[string]string
}

// maxNames bounds Decoder.names: a stream with ever new names costs an
// allocation per event again, but no unbounded memory.
const maxNames = 64

// NewDecoder returns a decoder reading from r that accepts lines up to
// maxLine bytes, not counting the line end (at least 64 KiB is used).
func NewDecoder(r io.Reader, maxLine int) *Decoder {
	maxLine = max(maxLine, 64<<10)
	sc := bufio.NewScanner(r)
	// The buffer must hold a whole line plus its line end (CR LF), so that
	// the limit is exactly maxLine whatever the line end; splitLines itself
	// enforces maxLine.
	sc.Buffer(make([]byte, 0, 4096), maxLine+2)
	sc.Split(splitLines(maxLine))
	return &Decoder{sc: sc, Retry: -1}
}

// LastEventID is the id a reconnecting client would send as Last-Event-ID.
func (d *Decoder) LastEventID() string { return d.lastID }

// Next returns the next dispatched event. At the end of the stream it returns
// io.EOF; an event not ended by a blank line is discarded, as the spec says.
// A line longer than the limit ends decoding with ErrEventTooLarge, which
// every later call returns too; other read errors are returned as they are.
func (d *Decoder) Next() (Message, error) {
	name, err := d.next()
	if err != nil {
		return Message{}, err
	}
	// The data buffer always ends in the LF its last line added.
	return Message{ID: d.lastID, Name: name, Data: string(d.data[:len(d.data)-1])}, nil
}

// next reads up to the next dispatched event, leaves its data in d.data
// with the final LF, and returns its name.
func (d *Decoder) next() (string, error) {
	var (
		hasData bool
		name    string
	)
	d.data = d.data[:0]
	for d.sc.Scan() {
		line := d.sc.Bytes()
		if !d.started {
			d.started = true
			line = bytes.TrimPrefix(line, []byte("\xEF\xBB\xBF"))
		}
		if len(line) == 0 {
			d.lastID = d.idBuf
			if !hasData {
				name = ""
				continue
			}
			if name == "" {
				name = "message"
			}
			return name, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value := SplitField(line)
		switch string(field) {
		case "event":
			name = d.name(value)
		case "data":
			d.data = append(d.data, value...)
			d.data = append(d.data, '\n')
			hasData = true
		case "id":
			if bytes.IndexByte(value, 0) < 0 && string(value) != d.idBuf {
				d.idBuf = string(value)
			}
		case "retry":
			if n, err := strconv.Atoi(string(value)); err == nil && n >= 0 && isDigits(value) {
				d.Retry = n
			}
		}
	}
	if err := d.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return "", ErrEventTooLarge
		}
		return "", err
	}
	return "", io.EOF
}

// name returns b as a string, the same string for the same name each time.
func (d *Decoder) name(b []byte) string {
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if d.names == nil {
		d.names = make(map[string]string)
	}
	if len(d.names) < maxNames {
		d.names[s] = s
	}
	return s
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// splitLines returns a bufio.SplitFunc that splits on CR LF, CR or LF and
// fails with bufio.ErrTooLong as soon as a line is longer than maxLine bytes.
// A CR at the end of the buffer waits for more input, since it may be the
// first half of a CR LF.
//
// The scanner calls the function again with the same line start and more
// bytes after every read, so it remembers how far it has already looked:
// without that, a long line arriving in small reads (a bulk chunk over TCP)
// would be rescanned from its start on every read, in quadratic time.
func splitLines(maxLine int) bufio.SplitFunc {
	scanned := 0 // the first scanned bytes of data hold no line end
	return func(data []byte, atEOF bool) (int, []byte, error) {
		i := indexLineEnd(data[scanned:])
		if i >= 0 {
			i += scanned
		}
		if i > maxLine || (i < 0 && len(data) > maxLine) {
			return 0, nil, bufio.ErrTooLong
		}
		switch {
		case i < 0:
			// A final line without a line end is not a complete line:
			// the spec discards it along with any event it was part of.
			scanned = len(data)
			return 0, nil, nil
		case data[i] == '\n':
			scanned = 0
			return i + 1, data[:i], nil
		case i+1 < len(data):
			scanned = 0
			if data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
			return i + 1, data[:i], nil
		case atEOF:
			scanned = 0
			return i + 1, data[:i], nil
		}
		scanned = i
		return 0, nil, nil
	}
}

// SplitField splits one line of an event stream (not blank, not a comment)
// into its field and value, as the WHATWG rules read it: the field is the
// line up to its first colon, the whole line without one; one space after
// the colon is not part of the value.
func SplitField(line []byte) (field, value []byte) {
	i := bytes.IndexByte(line, ':')
	if i < 0 {
		return line, nil
	}
	return line[:i], bytes.TrimPrefix(line[i+1:], []byte(" "))
}
