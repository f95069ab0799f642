package protocol_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// FuzzNextRaw checks that NextRaw yields exactly Next's events, ids, retry
// and errors on any input, however it is chunked, whatever the line limit,
// and when the two calls are mixed on one decoder.
// Seeds: the f.Add calls below and testdata/fuzz/FuzzNextRaw.
func FuzzNextRaw(f *testing.F) {
	f.Add([]byte("data: a\n\n"), false)
	f.Add([]byte("\uFEFFid: 1\r\nevent: x\r\ndata: a\r\ndata\r\n\r\n"), false)
	f.Add([]byte("data: a\rdata: b\r\r: c\n\rretry: 10\n"), true)
	f.Add([]byte("id: 1\x00\ndata:\n\nid\n\nevent: e\n\ndata: x"), true)
	f.Add([]byte("id: 7\nevent: bulk\ndata: {\"transfer\":\"t\",\"seq\":0,\"chunks\":1,\"data\":\"Zm9v\"}\n\nevent: bulk-end\ndata: {}\n\n"), false)
	f.Add([]byte("data: x"), true)
	f.Fuzz(func(t *testing.T, in []byte, long bool) {
		// long repeats the input past the 64 KiB line limit, so that short
		// inputs reach ErrEventTooLarge (or long events) too.
		rs := readers
		if long && len(in) > 0 {
			in = bytes.Repeat(in, 64<<10/len(in)+2)
			rs = readers[:1]
		}
		for _, r := range rs {
			want, wantErr := decodeAll(r.wrap(string(in)), 0)
			for _, pattern := range []string{"r", "rn", "nrr"} {
				got, err := decodeMixed(r.wrap(string(in)), 0, pattern)
				if !reflect.DeepEqual(got, want) || err != wantErr {
					t.Fatalf("%s, %q: NextRaw gave %+v, %v\nNext gave %+v, %v", r.name, pattern, got, err, want, wantErr)
				}
			}
		}
	})
}

// TestNextRawDataIsCapped checks that appending to a RawMessage's Data
// cannot write into the decoder's buffer.
func TestNextRawDataIsCapped(t *testing.T) {
	d := protocol.NewDecoder(strings.NewReader("data: abc\ndata: def\n\n"), 0)
	m, err := d.NextRaw()
	if err != nil || string(m.Data) != "abc\ndef" {
		t.Fatalf("NextRaw = %q, %v", m.Data, err)
	}
	if cap(m.Data) != len(m.Data) {
		t.Fatalf("Data has cap %d, len %d: an append would reach the decoder's buffer", cap(m.Data), len(m.Data))
	}
}

// TestNextRawAllocs checks that a bulk-sized event costs no allocation once
// the decoder's buffers have grown: the point of NextRaw.
func TestNextRawAllocs(t *testing.T) {
	frame := []byte("id: 1\nevent: bulk\ndata: " + strings.Repeat("QUJD", 16<<10) + "\n\n")
	d := protocol.NewDecoder(&cycleReader{frame: frame}, 256<<10)
	for range 3 { // grow the buffers
		if _, err := d.NextRaw(); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		m, err := d.NextRaw()
		if err != nil || len(m.Data) != 64<<10 || m.Name != "bulk" {
			t.Fatalf("NextRaw = %s %d bytes, %v", m.Name, len(m.Data), err)
		}
	})
	if allocs != 0 {
		t.Errorf("NextRaw: %v allocs per 64 KiB event, want 0", allocs)
	}
}

// cycleReader repeats frame for ever, in reads of at most 16 KiB as a
// network connection would give them.
type cycleReader struct {
	frame []byte
	off   int
}

func (c *cycleReader) Read(p []byte) (int, error) {
	n := copy(p[:min(len(p), 16<<10)], c.frame[c.off:])
	c.off = (c.off + n) % len(c.frame)
	return n, nil
}
