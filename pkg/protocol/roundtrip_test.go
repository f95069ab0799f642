package protocol_test

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// pieces are the fragments random data is made of: the line ends in every
// combination, things a parser could mistake for fields or comments, a BOM,
// NUL, multi-byte UTF-8 and invalid UTF-8.
var pieces = []string{
	"\r", "\n", "\r\n", "\n\r", "\r\r", " ", ":", "a", "xyz", "data: ", "id: 9", "event: x", "retry: 1",
	"\uFEFF", "\x00", "é", "漢字", "→", "{\"k\":\"v\"}", "\xff", "\xe6\xbc",
}

var names = []string{"one", "two", "three", "message", "chat", "a b", "a:b", "x ", "über", "漢", "\t", ":", "data"}

func randomData(r *rand.Rand) string {
	var b strings.Builder
	for range r.IntN(12) {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

// TestRoundTrip encodes random streams (whole events, bodies without id,
// comments and retry fields interleaved) and checks that the Decoder gives
// back every event's id, name and data, with CR LF and CR turned into LF,
// through every kind of chunked reader. The seed is fixed so a failure is
// reproducible.
func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		var (
			stream []byte
			want   decoded
			id     uint64
			lastID string
			err    error
		)
		want.Retry = -1
		for range 1 + r.IntN(20) {
			name, data := names[r.IntN(len(names))], randomData(r)
			switch k := r.IntN(10); {
			case k < 6: // a whole event with a new id
				id += uint64(1 + r.IntN(1000))
				lastID = strconv.FormatUint(id, 10)
				stream, err = protocol.AppendEvent(stream, id, name, []byte(data))
			case k < 8: // a body: the previous id stays in force
				stream, err = protocol.AppendBody(stream, name, []byte(data))
			case k < 9:
				stream = protocol.AppendComment(stream, randomData(r))
				continue
			default:
				want.Retry = r.IntN(100000)
				stream = protocol.AppendRetry(stream, want.Retry)
				continue
			}
			if err != nil {
				t.Fatalf("stream %d: encode %q: %v", n, name, err)
			}
			want.Msgs = append(want.Msgs, protocol.Message{ID: lastID, Name: name, Data: normalise(data)})
		}
		want.LastID = lastID
		for _, rd := range readers {
			got, err := decodeAll(rd.wrap(string(stream)), 0)
			if err != nil {
				t.Fatalf("stream %d (%s): %v", n, rd.name, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("stream %d (%s) %q\n got %+v\nwant %+v", n, rd.name, stream, got, want)
			}
		}
	}
}

// TestRoundTripBulk sends one bulk chunk of the largest size through the
// encoder and the decoder, as the server and the load generator do: the
// base64 JSON line is longer than 64 KiB, so the decoder needs a larger limit.
func TestRoundTripBulk(t *testing.T) {
	raw := make([]byte, protocol.BulkChunkSize)
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	data := bulkJSON(t, raw)
	if len(data) <= 64<<10 {
		t.Fatalf("bulk event data is %d bytes; expected more than 64 KiB", len(data))
	}
	frame, err := protocol.AppendEvent(nil, 42, protocol.EventBulk, data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeAll(bytes.NewReader(frame), 0); err != protocol.ErrEventTooLarge {
		t.Fatalf("with the default limit: err = %v, want ErrEventTooLarge", err)
	}
	got, err := decodeAll(bytes.NewReader(frame), 128<<10)
	if err != nil {
		t.Fatal(err)
	}
	want := []protocol.Message{{ID: "42", Name: protocol.EventBulk, Data: string(data)}}
	if !reflect.DeepEqual(got.Msgs, want) {
		t.Fatalf("bulk event did not round-trip (%d messages)", len(got.Msgs))
	}
}
