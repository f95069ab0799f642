package protocol_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// decoded is everything a Decoder reports for one stream.
type decoded struct {
	Msgs   []protocol.Message
	LastID string
	Retry  int
}

// decodeAll reads r to its end with a decoder of the given line limit.
func decodeAll(r io.Reader, maxLine int) (decoded, error) {
	d := protocol.NewDecoder(r, maxLine)
	var out decoded
	for {
		m, err := d.Next()
		if err != nil {
			out.LastID, out.Retry = d.LastEventID(), d.Retry
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		out.Msgs = append(out.Msgs, m)
	}
}

// readers gives the same input as differently chunked readers, so that every
// CR, CRLF and BOM in a test also falls on a read boundary.
var readers = []struct {
	name string
	wrap func(string) io.Reader
}{
	{"whole", func(s string) io.Reader { return strings.NewReader(s) }},
	{"one byte", func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) }},
	{"half", func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) }},
	{"data with EOF", func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) }},
}

func msg(id, name, data string) protocol.Message {
	return protocol.Message{ID: id, Name: name, Data: data}
}

// TestDecoderConformance follows the parsing rules of WHATWG HTML §9.2.6
// (event stream interpretation) one rule at a time, including the examples
// the spec gives.
func TestDecoderConformance(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   []protocol.Message
		lastID string
		retry  int
	}{
		// BOM: one U+FEFF at the very start of the stream is dropped.
		{"BOM at start", "\uFEFFdata: a\n\n", []protocol.Message{msg("", "message", "a")}, "", -1},
		{"BOM then CRLF", "\uFEFF\r\ndata: a\r\n\r\n", []protocol.Message{msg("", "message", "a")}, "", -1},
		{"second BOM is part of the field name", "\uFEFF\uFEFFdata: a\n\n", nil, "", -1},
		{"BOM not at start is not stripped", "data: a\n\n\uFEFFdata: b\n\n", []protocol.Message{msg("", "message", "a")}, "", -1},
		{"BOM inside data is kept", "data: \uFEFFx\n\n", []protocol.Message{msg("", "message", "\uFEFFx")}, "", -1},

		// Line ends: CR LF, LF and CR, freely mixed.
		{"LF", "data: a\ndata: b\n\n", []protocol.Message{msg("", "message", "a\nb")}, "", -1},
		{"CRLF", "data: a\r\ndata: b\r\n\r\n", []protocol.Message{msg("", "message", "a\nb")}, "", -1},
		{"CR", "data: a\rdata: b\r\r", []protocol.Message{msg("", "message", "a\nb")}, "", -1},
		{"mixed line ends", "data: a\rdata: b\ndata: c\r\n\r\n", []protocol.Message{msg("", "message", "a\nb\nc")}, "", -1},
		{"mixed blank lines", "data: a\r\rdata: b\n\ndata: c\r\n\r\ndata: d\r\n\n",
			[]protocol.Message{msg("", "message", "a"), msg("", "message", "b"), msg("", "message", "c"), msg("", "message", "d")}, "", -1},
		{"LF CR is two line ends", "data: a\n\rdata: b\n\n",
			[]protocol.Message{msg("", "message", "a"), msg("", "message", "b")}, "", -1},
		{"CR at EOF ends the line", "data: a\n\r", []protocol.Message{msg("", "message", "a")}, "", -1},

		// Comments.
		{"comments ignored", ": hello\ndata: a\n:\n: data: b\n:data: c\n\n", []protocol.Message{msg("", "message", "a")}, "", -1},
		{"comment alone dispatches nothing", ": ping\n\n", nil, "", -1},

		// Fields.
		{"data without space", "data:test\n\n", []protocol.Message{msg("", "message", "test")}, "", -1},
		{"only one space stripped", "data:  two\n\n", []protocol.Message{msg("", "message", " two")}, "", -1},
		{"tab not stripped", "data:\tx\n\n", []protocol.Message{msg("", "message", "\tx")}, "", -1},
		{"colon in value", "data: a: b:c\n\n", []protocol.Message{msg("", "message", "a: b:c")}, "", -1},
		{"field without colon", "data\n\n", []protocol.Message{msg("", "message", "")}, "", -1},
		{"empty data lines", "data:\ndata\n\n", []protocol.Message{msg("", "message", "\n")}, "", -1},
		{"multiple data lines joined with LF", "data: YHOO\ndata: +2\ndata: 10\n\n", []protocol.Message{msg("", "message", "YHOO\n+2\n10")}, "", -1},
		{"unknown fields ignored", "foo: bar\nDATA: x\ndata : y\nevent\u00a0: z\ndata: a\n\n", []protocol.Message{msg("", "message", "a")}, "", -1},
		{"NUL in data kept", "data: a\x00b\n\n", []protocol.Message{msg("", "message", "a\x00b")}, "", -1},
		{"spec example: field without colon",
			"data\n\ndata\ndata\n\ndata:",
			[]protocol.Message{msg("", "message", ""), msg("", "message", "\n")}, "", -1},

		// Event type.
		{"default name message", "data: a\n\n", []protocol.Message{msg("", "message", "a")}, "", -1},
		{"event name", "event: tick\ndata: a\n\n", []protocol.Message{msg("", "tick", "a")}, "", -1},
		{"event after data", "data: a\nevent: tick\n\n", []protocol.Message{msg("", "tick", "a")}, "", -1},
		{"last event field wins", "event: x\nevent: y\ndata: a\n\n", []protocol.Message{msg("", "y", "a")}, "", -1},
		{"empty event name is message", "event:\ndata: a\n\nevent\ndata: b\n\n",
			[]protocol.Message{msg("", "message", "a"), msg("", "message", "b")}, "", -1},
		{"event name keeps extra spaces", "event:  x \ndata: a\n\n", []protocol.Message{msg("", " x ", "a")}, "", -1},
		{"event type reset after dispatch", "event: foo\ndata: a\n\ndata: b\n\n",
			[]protocol.Message{msg("", "foo", "a"), msg("", "message", "b")}, "", -1},
		{"event with no data not dispatched", "event: foo\n\n", nil, "", -1},
		{"event type reset by an event with no data", "event: foo\n\ndata: b\n\n", []protocol.Message{msg("", "message", "b")}, "", -1},

		// Ids.
		{"id persists across events without id", "id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n",
			[]protocol.Message{msg("1", "message", "a"), msg("1", "message", "b"), msg("2", "message", "c")}, "2", -1},
		{"id after data applies to the event", "data: a\nid: 5\n\n", []protocol.Message{msg("5", "message", "a")}, "5", -1},
		{"id containing NUL ignored", "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
			[]protocol.Message{msg("1", "message", "a"), msg("1", "message", "b")}, "1", -1},
		{"empty id resets", "id: 1\ndata: a\n\nid\ndata: b\n\nid: 3\ndata: c\n\nid:\ndata: d\n\n",
			[]protocol.Message{msg("1", "message", "a"), msg("", "message", "b"), msg("3", "message", "c"), msg("", "message", "d")}, "", -1},
		{"id is any text", "id: abc def\ndata: a\n\n", []protocol.Message{msg("abc def", "message", "a")}, "abc def", -1},
		{"id without data still sets last event id", "id: 7\n\n", nil, "7", -1},
		{"id of a cut-off event is not the last event id", "id: 1\ndata: a\n\nid: 2\ndata: b\n",
			[]protocol.Message{msg("1", "message", "a")}, "1", -1},
		{"id without blank line at EOF", "id: 1\n", nil, "", -1},
		{"spec example: ids",
			": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
			[]protocol.Message{msg("1", "message", "first event"), msg("", "message", "second event"), msg("", "message", " third event")}, "", -1},

		// Retry.
		{"retry", "retry: 1500\n\n", nil, "", 1500},
		{"retry without space", "retry:10\n", nil, "", 10},
		{"retry zero", "retry: 0\n", nil, "", 0},
		{"retry last valid wins", "retry: 10\nretry: x\nretry: 20\nretry: 2x\n", nil, "", 20},
		{"retry with letters ignored", "retry: 15x0\n", nil, "", -1},
		{"retry negative ignored", "retry: -1\n", nil, "", -1},
		{"retry plus sign ignored", "retry: +1\n", nil, "", -1},
		{"retry decimal ignored", "retry: 1.5\n", nil, "", -1},
		{"retry two spaces ignored", "retry:  100\n", nil, "", -1},
		{"retry trailing space ignored", "retry: 100 \n", nil, "", -1},
		{"retry empty ignored", "retry:\nretry\n", nil, "", -1},
		{"retry on an unfinished line ignored", "retry: 100", nil, "", -1},
		{"retry does not dispatch or disturb an event", "data: a\nretry: 5\ndata: b\n\n", []protocol.Message{msg("", "message", "a\nb")}, "", 5},

		// End of stream.
		{"empty stream", "", nil, "", -1},
		{"unterminated event discarded", "data: a\n", nil, "", -1},
		{"unterminated line discarded", "data: a", nil, "", -1},
		{"unterminated CR line discarded", "data: a\r", nil, "", -1},
		{"unterminated final event after a complete one", "data: a\n\ndata: b\n\ndata: c\n",
			[]protocol.Message{msg("", "message", "a"), msg("", "message", "b")}, "", -1},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				got, err := decodeAll(rd.wrap(tt.in), 0)
				if err != nil {
					t.Fatalf("decode %q: %v", tt.in, err)
				}
				want := decoded{Msgs: tt.want, LastID: tt.lastID, Retry: tt.retry}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("decode %q\n got %+v\nwant %+v", tt.in, got, want)
				}
			})
		}
	}
}

// chunkReader returns its chunks one Read at a time, so a test can put a read
// boundary exactly between a CR and the LF that completes it.
type chunkReader struct{ chunks []string }

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	if r.chunks[0] == "" {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

// TestDecoderCRSplitAcrossReads checks that a CR ending one read and an LF
// starting the next are one line end, not two (which would dispatch "a" on
// its own), and that the decoder does not wait for more input than it needs.
func TestDecoderCRSplitAcrossReads(t *testing.T) {
	r := &chunkReader{chunks: []string{"data: a\r", "\ndata: b\r", "\n\r", "\ndata: c\r", "\r"}}
	got, err := decodeAll(r, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []protocol.Message{msg("", "message", "a\nb"), msg("", "message", "c")}
	if !reflect.DeepEqual(got.Msgs, want) {
		t.Errorf("got %+v, want %+v", got.Msgs, want)
	}
}

// TestDecoderDispatchesWithoutReadingAhead checks that Next returns an event
// as soon as its blank line is complete, without waiting for more input: a
// live stream may stay silent for seconds after an event. Only a final CR
// must wait for the next byte, which may be the LF of a CR LF.
func TestDecoderDispatchesWithoutReadingAhead(t *testing.T) {
	pr, pw := io.Pipe()
	type result struct {
		m   protocol.Message
		err error
	}
	results := make(chan result)
	go func() {
		// Ends at io.EOF, when the test closes pw.
		d := protocol.NewDecoder(pr, 0)
		for {
			m, err := d.Next()
			results <- result{m, err}
			if err != nil {
				return
			}
		}
	}()
	next := func() result {
		t.Helper()
		select {
		case r := <-results:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("Next did not return")
			return result{}
		}
	}
	write := func(s string) {
		t.Helper()
		if _, err := pw.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	write("data: a\n\n")
	if r := next(); r.err != nil || r.m.Data != "a" {
		t.Fatalf("after LF LF: %+v", r)
	}
	write("data: b\r\n\r\n")
	if r := next(); r.err != nil || r.m.Data != "b" {
		t.Fatalf("after CRLF CRLF: %+v", r)
	}
	write("data: c\r\r")
	write("x")
	if r := next(); r.err != nil || r.m.Data != "c" {
		t.Fatalf("after CR CR and one more byte: %+v", r)
	}
	_ = pw.Close()
	if r := next(); !errors.Is(r.err, io.EOF) {
		t.Fatalf("at end: %+v, want io.EOF", r)
	}
}

// TestDecoderLineLimit checks that the limit counts the line without its
// line end, exactly, for every kind of line end, and that lines longer than
// 64 KiB pass when the limit allows them. The one-byte reader also guards
// against rescanning a pending line on every read: that was quadratic and
// took seconds here.
func TestDecoderLineLimit(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	line := func(n int) string { return "data:" + strings.Repeat("x", n-len("data:")) }
	for _, end := range []string{"\n", "\r", "\r\n"} {
		for _, tt := range []struct {
			name    string
			maxLine int
			n       int
			tooBig  bool
		}{
			{"at the default limit", 0, limit, false},
			{"one over the default limit", 0, limit + 1, true},
			{"100 KiB over the default limit", 0, 100 << 10, true},
			{"small limits are raised to 64 KiB", 10, limit, false},
			{"100 KiB with a 256 KiB limit", 256 << 10, 100 << 10, false},
			{"at a 100 KiB limit", 100 << 10, 100 << 10, false},
			{"one over a 100 KiB limit", 100 << 10, 100<<10 + 1, true},
		} {
			name := tt.name + "/" + strings.NewReplacer("\r", "CR", "\n", "LF").Replace(end)
			for _, rd := range readers {
				t.Run(name+"/"+rd.name, func(t *testing.T) {
					in := "id: 1" + end + line(tt.n) + end + end + "data: next" + end + end
					d := protocol.NewDecoder(rd.wrap(in), tt.maxLine)
					m, err := d.Next()
					if tt.tooBig {
						if !errors.Is(err, protocol.ErrEventTooLarge) {
							t.Fatalf("Next = %d bytes, %v; want ErrEventTooLarge", len(m.Data), err)
						}
						// The error is sticky: the stream cannot be resynchronised.
						if _, err := d.Next(); !errors.Is(err, protocol.ErrEventTooLarge) {
							t.Fatalf("second Next: %v, want ErrEventTooLarge", err)
						}
						return
					}
					if err != nil {
						t.Fatalf("Next: %v", err)
					}
					if want := tt.n - len("data:"); len(m.Data) != want || m.ID != "1" {
						t.Fatalf("got id %q and %d bytes, want id 1 and %d", m.ID, len(m.Data), want)
					}
					if m, err := d.Next(); err != nil || m.Data != "next" {
						t.Fatalf("event after the long line: %+v, %v", m, err)
					}
				})
			}
		}
	}
}

// TestDecoderLongComment checks that the limit applies to every line,
// comments included, since the decoder must hold a line to classify it.
func TestDecoderLongComment(t *testing.T) {
	in := ":" + strings.Repeat("x", 64<<10) + "\ndata: a\n\n"
	if _, err := decodeAll(strings.NewReader(in), 0); !errors.Is(err, protocol.ErrEventTooLarge) {
		t.Fatalf("err = %v, want ErrEventTooLarge", err)
	}
	got, err := decodeAll(strings.NewReader(in), 65<<10)
	if err != nil || !reflect.DeepEqual(got.Msgs, []protocol.Message{msg("", "message", "a")}) {
		t.Fatalf("with a larger limit: %+v, %v", got, err)
	}
}

var errBoom = errors.New("boom")

// TestDecoderReadError checks that a read error other than EOF is returned
// as is, after the events that were complete before it.
func TestDecoderReadError(t *testing.T) {
	r := io.MultiReader(strings.NewReader("data: a\n\ndata: b\n"), iotest.ErrReader(errBoom))
	d := protocol.NewDecoder(r, 0)
	if m, err := d.Next(); err != nil || m.Data != "a" {
		t.Fatalf("first Next = %+v, %v", m, err)
	}
	if _, err := d.Next(); !errors.Is(err, errBoom) {
		t.Fatalf("second Next: %v, want %v", err, errBoom)
	}
}

// TestDecodeStreamGolden decodes the example stream of TestStreamGolden.
func TestDecodeStreamGolden(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "stream.golden"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeAll(bytes.NewReader(in), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := decoded{
		Msgs: []protocol.Message{
			msg("0", "session", `{"session":"S","channels":[],"resumed":false}`),
			msg("1", "tuned", `{"channels":["one","two"]}`),
			msg("2", "one", "a"),
			msg("3", "two", "漢"),
			msg("4", "chat", `{"id":1,"name":"ann","text":"hi","at":"2025-01-02T03:04:05Z"}`),
			msg("5", "bulk", `{"transfer":"T","seq":0,"chunks":1,"data":"+/8="}`),
			msg("6", "bulk-end", `{"transfer":"T","bytes":2,"sha256":"H"}`),
			msg("9", "gap", `{"missed":2}`),
			msg("9", "bye", `{"reason":"shutdown"}`),
		},
		LastID: "9",
		Retry:  protocol.RetryMillis,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}
