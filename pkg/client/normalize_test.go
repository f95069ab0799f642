package client

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// chunks is a body that returns the given pieces one per Read, then err.
type chunks struct {
	parts []string
	err   error
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		return 0, c.err
	}
	n := copy(p, c.parts[0])
	if n < len(c.parts[0]) {
		c.parts[0] = c.parts[0][n:]
	} else {
		c.parts = c.parts[1:]
	}
	return n, nil
}

func (c *chunks) Close() error { return nil }

func TestEventReader(t *testing.T) {
	cases := []struct {
		name    string
		parts   []string
		end     error
		limit   int
		want    string
		wantErr error
	}{
		{"LF passes", []string{"data: x\n\n"}, io.EOF, 0, "data: x\n\n", io.EOF},
		{"CRLF", []string{"data: x\r\n\r\n"}, io.EOF, 0, "data: x\n\n", io.EOF},
		{"CR", []string{"data: x\r\r"}, io.EOF, 0, "data: x\n\n", io.EOF},
		{"CR and LF split across reads", []string{"data: x\r", "\n\r", "\n"}, io.EOF, 0, "data: x\n\n", io.EOF},
		{"CR then CR across reads", []string{"a: 1\r", "\rb: 2\n\n"}, io.EOF, 0, "a: 1\n\nb: 2\n\n", io.EOF},
		{"LF then CR", []string{"data: a\n\rdata: b\n\n"}, io.EOF, 0, "data: a\n\ndata: b\n\n", io.EOF},
		{"BOM", []string{"\xEF\xBB\xBFdata: x\n\n"}, io.EOF, 0, "data: x\n\n", io.EOF},
		{"BOM split", []string{"\xEF", "\xBB", "\xBF", "data: x\n\n"}, io.EOF, 0, "data: x\n\n", io.EOF},
		{"only one BOM", []string{"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n"}, io.EOF, 0, "\xEF\xBB\xBFdata: x\n\n", io.EOF},
		{"not a BOM", []string{"\xEF\xBB", "data: x\n\n"}, io.EOF, 0, "\xEF\xBBdata: x\n\n", io.EOF},
		{"BOM later is data", []string{"data: x\n\n\xEF\xBB\xBF: c\n\n"}, io.EOF, 0, "data: x\n\n\xEF\xBB\xBF: c\n\n", io.EOF},
		{"incomplete event withheld", []string{"data: x\n\nid: 2\ndata: y"}, io.EOF, 0, "data: x\n\n", io.ErrUnexpectedEOF},
		{"incomplete line end withheld", []string{"data: x\n\ndata: y\n"}, io.EOF, 0, "data: x\n\n", io.ErrUnexpectedEOF},
		{"error mid event", []string{"data: x\n\ndata: y\n"}, io.ErrClosedPipe, 0, "data: x\n\n", io.ErrClosedPipe},
		{"leading blank line", []string{"\ndata: x\n\n"}, io.EOF, 0, "\ndata: x\n\n", io.EOF},
		{"too large", []string{"data: x\n\ndata: 0123456789"}, io.EOF, 10, "data: x\n\n", ErrEventTooLarge},
		{"complete event over the limit", []string{"data: x\n\ndata: 0123456789\n\ndata: y\n\n"}, io.EOF, 17, "data: x\n\n", ErrEventTooLarge},
		{"at the limit", []string{"data: 0123456789\n\n"}, io.EOF, 18, "data: 0123456789\n\n", io.EOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			limit := tc.limit
			if limit == 0 {
				limit = 1 << 20
			}
			reads := 0
			r := newEventReader(&chunks{parts: tc.parts, err: tc.end}, limit, func() { reads++ })
			var got bytes.Buffer
			buf := make([]byte, 3) // small reads, to split what it releases too
			var err error
			for {
				var n int
				n, err = r.Read(buf)
				got.Write(buf[:n])
				if err != nil {
					break
				}
			}
			if got.String() != tc.want || !errors.Is(err, tc.wantErr) {
				t.Errorf("got %q, %v; want %q, %v", got.String(), err, tc.want, tc.wantErr)
			}
			if reads == 0 {
				t.Errorf("onRead never called")
			}
		})
	}
}

// TestEventReaderMatchesSpec: for random streams of fields, comments and
// mixed line ends, cut into random reads, the events protocol.Decoder (the
// WHATWG reference) finds are the same with and without eventReader, and
// eventReader releases only LF and only whole events.
func TestEventReaderMatchesSpec(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		stream := randomStream(rng)
		parts := cut(rng, stream)
		r := newEventReader(&chunks{parts: parts, err: io.EOF}, 1<<20, nil)
		norm, err := io.ReadAll(r)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("case %d: %v", i, err)
		}
		if bytes.IndexByte(norm, '\r') >= 0 {
			t.Fatalf("case %d: CR released: %q", i, norm)
		}
		if len(norm) > 0 && !bytes.HasSuffix(norm, []byte("\n\n")) && string(norm) != "\n" {
			t.Fatalf("case %d: released an incomplete event: %q", i, norm)
		}
		want := decodeAll(t, stream)
		got := decodeAll(t, string(norm))
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("case %d: stream %q\nnormalized %q\nspec %q\ngot  %q", i, stream, norm, want, got)
		}
	}
}

func decodeAll(t *testing.T, s string) []string {
	d := protocol.NewDecoder(strings.NewReader(s), 1<<20)
	var out []string
	for {
		m, err := d.Next()
		if err != nil {
			return out
		}
		out = append(out, m.ID+"/"+m.Name+"/"+m.Data)
	}
}

func randomStream(rng *rand.Rand) string {
	ends := []string{"\n", "\r", "\r\n"}
	lines := []string{"data: a", "data:b", "data", "data:  c", "id: 7", "id:8", "event: one", "event:two",
		": comment", ":", "retry: 5", "x: y", "", "", "", "data: \xEF\xBB\xBF"}
	var b strings.Builder
	if rng.IntN(4) == 0 {
		b.WriteString("\xEF\xBB\xBF")
	}
	for range rng.IntN(30) {
		b.WriteString(lines[rng.IntN(len(lines))])
		b.WriteString(ends[rng.IntN(len(ends))])
	}
	return b.String()
}

func cut(rng *rand.Rand, s string) []string {
	var parts []string
	for len(s) > 0 {
		n := min(1+rng.IntN(6), len(s))
		parts = append(parts, s[:n])
		s = s[n:]
	}
	return parts
}

// FuzzEventReader: whatever the bytes and however they are cut into reads,
// eventReader changes nothing the WHATWG reference decoder sees.
func FuzzEventReader(f *testing.F) {
	f.Add("data: a\r\n\r\nid: 1\rdata: b\n\r", uint8(3))
	f.Add("\xEF\xBB\xBFdata: x\n\n", uint8(1))
	f.Add("\xEF\xBBdata: x\r\r: c\n\n", uint8(2))
	f.Fuzz(func(t *testing.T, stream string, step uint8) {
		n := int(step%16) + 1
		var parts []string
		for s := stream; len(s) > 0; {
			k := min(n, len(s))
			parts, s = append(parts, s[:k]), s[k:]
		}
		norm, err := io.ReadAll(newEventReader(&chunks{parts: parts, err: io.EOF}, 1<<20, nil))
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatal(err)
		}
		if bytes.IndexByte(norm, '\r') >= 0 {
			t.Fatalf("CR released: %q", norm)
		}
		want, got := decodeAll(t, stream), decodeAll(t, string(norm))
		if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Fatalf("stream %q\nnormalized %q\nspec %q\ngot  %q", stream, norm, want, got)
		}
	})
}
