package protocol_test

import (
	"bytes"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// FuzzEncodeDecode encodes one event after a retry field and a comment and
// decodes the result. A name the encoder accepts must come back exactly, with
// the id and the data (line ends normalised to LF); a name it refuses must be
// one that would break the framing, and the refusal must leave dst as it was.
// Seeds: the f.Add calls below and testdata/fuzz/FuzzEncodeDecode.
func FuzzEncodeDecode(f *testing.F) {
	f.Add("one", []byte("a"), "ping", uint64(1))
	f.Add("two", []byte("漢字"), "", uint64(0))
	f.Add("chat", []byte(`{"id":1,"name":"ann","text":"hi"}`), "a\r\nb", uint64(18446744073709551615))
	f.Add("message", []byte("a\r\nb\rc\nd\n"), "\r", uint64(7))
	f.Add("a:b c", []byte(" leading space\n\r\n"), ": data: x", uint64(9))
	f.Add("", []byte("x"), "", uint64(1))
	f.Add(" one", []byte("x"), "", uint64(1))
	f.Add("a\nb", []byte("x"), "", uint64(1))
	f.Add("a\x00", []byte("x"), "", uint64(1))
	f.Fuzz(func(t *testing.T, name string, data []byte, comment string, id uint64) {
		prefix := protocol.AppendComment(protocol.AppendRetry(nil, protocol.RetryMillis), comment)
		backing := append(bytes.Clone(prefix), "spare capacity"...)
		dst := backing[:len(prefix)]
		stream, err := protocol.AppendEvent(dst, id, name, data)
		if err != nil {
			if !errors.Is(err, protocol.ErrBadEventName) {
				t.Fatalf("AppendEvent(%q): %v", name, err)
			}
			if name != "" && name[0] != ' ' && !strings.ContainsAny(name, "\r\n\x00") {
				t.Fatalf("AppendEvent refused %q, which SSE can carry", name)
			}
			if !bytes.Equal(stream, prefix) || string(backing[len(prefix):]) != "spare capacity" {
				t.Fatalf("refused name %q changed dst", name)
			}
			return
		}
		want := decoded{
			Msgs:   []protocol.Message{{ID: strconv.FormatUint(id, 10), Name: name, Data: normalise(string(data))}},
			LastID: strconv.FormatUint(id, 10),
			Retry:  protocol.RetryMillis,
		}
		for _, r := range readers[:2] {
			got, err := decodeAll(r.wrap(string(stream)), len(stream))
			if err != nil {
				t.Fatalf("decode (%s) %q: %v", r.name, stream, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("decode (%s) %q\n got %+v\nwant %+v", r.name, stream, got, want)
			}
		}
	})
}

// FuzzDecoder feeds arbitrary bytes to the Decoder. It must not panic, must
// agree with specParse whether the input arrives whole or a byte at a time,
// never return a name, id or data holding CR (or LF outside data, or NUL in
// an id), and fail with ErrEventTooLarge exactly when a line is over the limit.
// Seeds: the f.Add calls below and testdata/fuzz/FuzzDecoder.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte("data: a\n\n"))
	f.Add([]byte("\uFEFFid: 1\r\nevent: x\r\ndata: a\r\ndata\r\n\r\n"))
	f.Add([]byte("data: a\rdata: b\r\r: c\n\rretry: 10\n"))
	f.Add([]byte("id: 1\x00\ndata:\n\nid\n\nevent: e\n\ndata: x"))
	f.Add([]byte("\uFEFF\uFEFFdata: a\n\n\uFEFFdata: b\n\n"))
	f.Add([]byte("retry: 99999999999999999999\nretry: 5\nretry: -5\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		want := specParse(string(in))
		for _, r := range readers[:2] {
			got, err := decodeAll(r.wrap(string(in)), len(in))
			if err != nil {
				t.Fatalf("decode (%s) %q: %v", r.name, in, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("decode (%s) %q\n got %+v\nwant %+v", r.name, in, got, want)
			}
		}
		for _, m := range want.Msgs {
			if strings.ContainsRune(m.Data, '\r') || strings.ContainsAny(m.Name, "\r\n") ||
				strings.ContainsAny(m.ID, "\r\n\x00") || m.Name == "" {
				t.Fatalf("bad message %+v from %q", m, in)
			}
		}

		// The default limit: the same events, or ErrEventTooLarge after
		// a prefix of them when some line is too long.
		got, err := decodeAll(bytes.NewReader(in), 0)
		tooLong := longestLine(string(in)) > 64<<10
		switch {
		case errors.Is(err, protocol.ErrEventTooLarge):
			if !tooLong {
				t.Fatalf("ErrEventTooLarge but no line is over 64 KiB")
			}
			if len(got.Msgs) > len(want.Msgs) || !reflect.DeepEqual(got.Msgs, want.Msgs[:len(got.Msgs)]) {
				t.Fatalf("events before ErrEventTooLarge are not a prefix of the stream's events")
			}
		case err != nil:
			t.Fatal(err)
		case tooLong:
			t.Fatalf("a line over 64 KiB was accepted")
		case !reflect.DeepEqual(got, want):
			t.Fatalf("with the default limit\n got %+v\nwant %+v", got, want)
		}
	})
}
