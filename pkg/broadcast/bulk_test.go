package broadcast

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// TestChunkEventsMatchEncodingJSON checks every chunk of transfers whose
// last chunk leaves 0, 1 or 2 bytes over a multiple of three (no padding,
// "==", "="), besides full 48 KiB chunks, against the event encoding/json
// and the encoder would write: appendChunkEvent's base64 is its own. A
// chunk made again has the same bytes, and only the last is short.
func TestChunkEventsMatchEncodingJSON(t *testing.T) {
	for _, size := range []int64{0, 1, 2, 3, 13, 14, 15, protocol.BulkChunkSize, protocol.BulkChunkSize + 1, 3*protocol.BulkChunkSize - 1, 100_000} {
		tr := &transfer{id: "t_-9", size: size, chunks: protocol.Chunks(size)}
		tr.seed[3] = byte(size)
		var body, scratch []byte
		for seq := range tr.chunks {
			var err error
			body, scratch, err = tr.appendChunkEvent(body[:0], scratch, seq)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := tr.chunk(nil, seq)
			if again, _ := tr.chunk(nil, seq); string(again) != string(raw) {
				t.Fatalf("size %d, chunk %d: made again, it differs", size, seq)
			}
			if want := min(protocol.BulkChunkSize, size-int64(seq)*protocol.BulkChunkSize); int64(len(raw)) != want {
				t.Fatalf("size %d, chunk %d: %d bytes, want %d", size, seq, len(raw), want)
			}
			data, _ := json.Marshal(protocol.BulkChunk{Transfer: tr.id, Seq: seq, Chunks: tr.chunks, Data: raw})
			want, _ := protocol.AppendBody(nil, protocol.EventBulk, data)
			if string(body) != string(want) {
				t.Fatalf("size %d, chunk %d: event differs from encoding/json's:\n%.120s\n%.120s", size, seq, body, want)
			}
		}
	}
}

func TestBulkDeterministicAndVerified(t *testing.T) {
	for _, size := range []int64{0, 1, protocol.BulkChunkSize - 1, protocol.BulkChunkSize, protocol.BulkChunkSize + 1, 3<<20 + 7} {
		t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
			h := quietHub(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s, _ := h.NewSession(nil)
			st, _ := h.Attach(s, Position{})
			c := testStream(t, ctx, st)
			next(t, c)
			acc, err := s.Bulk(protocol.BulkPost{Bytes: &size})
			if err != nil {
				t.Fatal(err)
			}
			if acc.Chunks != protocol.Chunks(size) || acc.Bytes != size {
				t.Fatalf("accepted %+v", acc)
			}
			sum := sha256.New()
			var n int64
			for seq := 0; ; seq++ {
				m := next(t, c)
				if m.Name == protocol.EventBulkEnd {
					var end protocol.BulkEnd
					if err := json.Unmarshal([]byte(m.Data), &end); err != nil {
						t.Fatal(err)
					}
					got := hex.EncodeToString(sum.Sum(nil))
					if seq != acc.Chunks || end.SHA256 != acc.SHA256 || got != acc.SHA256 || n != size || end.Bytes != size {
						t.Fatalf("end after %d chunks, %d bytes: %+v, computed %s, accepted %+v", seq, n, end, got, acc)
					}
					return
				}
				var ch protocol.BulkChunk
				if err := json.Unmarshal([]byte(m.Data), &ch); err != nil {
					t.Fatal(err)
				}
				if ch.Seq != seq || ch.Chunks != acc.Chunks || ch.Transfer != acc.Transfer {
					t.Fatalf("chunk %+v, want seq %d", ch, seq)
				}
				sum.Write(ch.Data)
				n += int64(len(ch.Data))
			}
		})
	}
}

func TestBulkSumCached(t *testing.T) {
	h := quietHub(t, WithMaxTransfers(4))
	s, _ := h.NewSession(nil)
	n, m := int64(200_000), int64(200_001)
	a, err := s.Bulk(protocol.BulkPost{Bytes: &n})
	if err != nil {
		t.Fatal(err)
	}
	if h.sums.get(n) != a.SHA256 {
		t.Fatal("sum of a generated transfer not cached")
	}
	b, _ := s.Bulk(protocol.BulkPost{Bytes: &n})
	c, _ := s.Bulk(protocol.BulkPost{Bytes: &m})
	if a.SHA256 != b.SHA256 || a.SHA256 == c.SHA256 || a.Transfer == b.Transfer {
		t.Fatalf("same size must give the same data under another transfer id: %+v %+v %+v", a, b, c)
	}
	// The cached sum is the sum of what is sent.
	tr := &transfer{size: n, chunks: protocol.Chunks(n), seed: h.bulkSeed}
	if err := tr.hash(); err != nil || tr.sum != a.SHA256 {
		t.Fatalf("recomputed sum %s, cached %s (%v)", tr.sum, a.SHA256, err)
	}
}
