package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// readAll reads every event of r as "name|id|data" lines ("-" for no id),
// and the error that ended it.
func readAll(er *eventReader) ([]string, error) {
	var out []string
	for {
		ev, err := er.next()
		if errors.Is(err, errWouldBlock) {
			continue // a poller would come back when there is more
		}
		if err != nil {
			return out, err
		}
		id := "-"
		if ev.hasID {
			id = strconv.FormatUint(ev.id, 10)
		}
		out = append(out, fmt.Sprintf("%s|%s|%s", ev.name, id, ev.data))
	}
}

// decodeAll is readAll by protocol.Decoder, the project's reference parser:
// the same fields, an id as a number only if strconv reads it as one.
func decodeAll(stream string) ([]string, error) {
	dec := protocol.NewDecoder(strings.NewReader(stream), maxLine)
	var out []string
	for {
		m, err := dec.Next()
		if err != nil {
			return out, err
		}
		id := "-"
		if n, err := strconv.ParseUint(m.ID, 10, 64); err == nil {
			id = strconv.FormatUint(n, 10)
		}
		name := m.Name
		if name == "message" {
			name = ""
		}
		out = append(out, fmt.Sprintf("%s|%s|%s", name, id, m.Data))
	}
}

// chunked frames s as a chunked body in chunks of random sizes.
func chunked(s string, rng *rand.Rand) []byte {
	var body bytes.Buffer
	w := httputil.NewChunkedWriter(&body)
	for len(s) > 0 {
		n := min(len(s), 1+rng.IntN(40))
		io.WriteString(w, s[:n])
		s = s[n:]
	}
	w.Close()
	body.WriteString("\r\n")
	return body.Bytes()
}

// checkLikeDecoder reads stream with an eventReader, plain and chunked, in
// reads of one byte and of random sizes, and wants what Decoder reads.
func checkLikeDecoder(t *testing.T, stream string, seed uint64) {
	t.Helper()
	want, wantErr := decodeAll(stream)
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, framing := range []string{"plain", "chunked"} {
		body, isChunked := []byte(stream), framing == "chunked"
		if isChunked {
			body = chunked(stream, rng)
		}
		for _, reads := range []string{"whole", "one byte", "pending", "would block"} {
			var (
				src     io.Reader = bytes.NewReader(body)
				pending []byte
			)
			switch reads {
			case "one byte":
				src = iotest.OneByteReader(src)
			case "pending":
				cut := rng.IntN(len(body) + 1)
				pending, src = body[:cut], bytes.NewReader(body[cut:])
			case "would block":
				src = &blockingReader{r: iotest.HalfReader(src)}
			}
			var count atomic.Int64
			got, err := readAll(newEventReader(src, pending, isChunked, maxLine, &count))
			if !errors.Is(err, wantErr) {
				t.Errorf("%s, %s reads of %q: error %v, want %v", framing, reads, stream, err, wantErr)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("%s, %s reads of %q:\n got %q\nwant %q", framing, reads, stream, got, want)
			}
			if count.Load() != int64(len(stream)) {
				t.Errorf("%s, %s reads of %q: counted %d body bytes, want %d", framing, reads, stream, count.Load(), len(stream))
			}
		}
	}
}

// blockingReader has nothing to read every other call, like a poller's
// socket between two arrivals.
type blockingReader struct {
	r       io.Reader
	blocked bool
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if b.blocked = !b.blocked; b.blocked {
		return 0, errWouldBlock
	}
	return b.r.Read(p)
}

var eventStreams = []string{
	"id: 1\nevent: one\ndata: Ж\n\nid: 2\nevent: two\ndata: x\n\n",
	"retry: 2000\n\nid: 0\nevent: session\ndata: {\"session\":\"s\"}\n\n",
	"\xEF\xBB\xBFdata: bom\n\n",
	"data: a\r\ndata: b\r\n\r\nid: 7\rdata: cr\r\r",
	": comment\nid: 3\n: another\ndata: one\ndata: two\n\n",
	"id: 4\ndata: persists\n\ndata: no id field\n\nid\ndata: empty id\n\n",
	"id: 5\x00\ndata: NUL ignored\n\nid: x9\ndata: not a number\n\n",
	"id: 18446744073709551615\ndata: max\n\nid: 18446744073709551616\ndata: over\n\n",
	"event: foo\n\ndata: name reset by a blank line\n\n",
	"data\n\ndata:\n\ndata:no space\n\nevent:  two spaces\ndata: x\n\n",
	"data: cut off at the end",
	"data: a\n\ndata: cut off\n",
	"id: 8\ndata: ends with CR\r",
	"id: 9\nevent: bulk\ndata: {\"a\":1}\ndata: second line\n\nid: 10\nevent: tuned\ndata: {}\n\n",
	"",
}

func TestEventReaderLikeDecoder(t *testing.T) {
	for i, s := range eventStreams {
		checkLikeDecoder(t, s, uint64(i))
	}
}

func FuzzEventReader(f *testing.F) {
	for _, s := range eventStreams {
		f.Add(s, uint64(0))
	}
	f.Fuzz(func(t *testing.T, stream string, seed uint64) {
		checkLikeDecoder(t, stream, seed)
	})
}

func TestEventReaderLineLimit(t *testing.T) {
	long := "data: " + strings.Repeat("x", maxLine) + "\n\n"
	for _, isChunked := range []bool{false, true} {
		body := []byte(long)
		if isChunked {
			body = chunked(long, rand.New(rand.NewPCG(1, 2)))
		}
		_, err := readAll(newEventReader(bytes.NewReader(body), nil, isChunked, maxLine, nil))
		if !errors.Is(err, protocol.ErrEventTooLarge) {
			t.Errorf("chunked %v: a line of %d bytes: %v, want ErrEventTooLarge", isChunked, len(long)-2, err)
		}
	}
	fits := "data: " + strings.Repeat("y", maxLine-6) + "\n\n"
	got, err := readAll(newEventReader(iotest.HalfReader(strings.NewReader(fits)), nil, false, maxLine, nil))
	if err != io.EOF || len(got) != 1 || len(got[0]) != 3+maxLine-6 {
		t.Errorf("a line of exactly %d bytes: %d events, %v; want one event, EOF", maxLine, len(got), err)
	}
}

func TestEventReaderChunkFraming(t *testing.T) {
	tests := []struct {
		name, body string
		events     int
		err        error
	}{
		{"extension and upper case", "9;x=y\r\ndata: a\n\n\r\nA\r\ndata: bb\n\n\r\n0\r\n\r\n", 2, io.EOF},
		{"no last chunk", "9\r\ndata: a\n\n\r\n", 1, io.ErrUnexpectedEOF},
		{"bad size", "zz\r\ndata: a\n\n\r\n", 0, errChunked},
		{"no CRLF after data", "9\r\ndata: a\n\nXX0\r\n\r\n", 1, errChunked},
		{"header too long", "1" + strings.Repeat(" ", 2*maxChunkLine), 0, errChunked},
		{"trailers not read", "9\r\ndata: a\n\n\r\n0\r\nX-Trailer: 1\r\n\r\ndata: b\n\n", 1, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(newEventReader(iotest.OneByteReader(strings.NewReader(tt.body)), nil, true, maxLine, nil))
			if len(got) != tt.events || !errors.Is(err, tt.err) {
				t.Errorf("%d events (%q), %v; want %d, %v", len(got), got, err, tt.events, tt.err)
			}
		})
	}
}

// TestEventReaderNoAllocs: once its buffers have grown, reading a tick
// allocates nothing.
func TestEventReaderNoAllocs(t *testing.T) {
	body := chunkedBody(tickEvents(200), 2)
	var src bytes.Reader
	src.Reset(body)
	er := newEventReader(&src, nil, true, maxLine, nil)
	for range 10 {
		if _, err := er.next(); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := er.next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per event, want 0", allocs)
	}
}
