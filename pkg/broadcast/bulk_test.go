package broadcast

import (
	"encoding/json"
	"testing"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// TestChunkEventsMatchEncodingJSON checks every chunk of transfers whose
// last chunk leaves 0, 1 or 2 bytes over a multiple of three (no padding,
// "==", "="), besides full 48 KiB chunks, against the event encoding/json
// and the encoder would write: appendChunkEvent's base64 is its own.
func TestChunkEventsMatchEncodingJSON(t *testing.T) {
	for _, size := range []int64{0, 1, 2, 3, 13, 14, 15, protocol.BulkChunkSize, protocol.BulkChunkSize + 1, 3*protocol.BulkChunkSize - 1} {
		tr := &transfer{id: "t9", size: size, chunks: protocol.Chunks(size)}
		tr.seed[3] = byte(size)
		var body, scratch []byte
		for seq := range tr.chunks {
			var err error
			body, scratch, err = tr.appendChunkEvent(body[:0], scratch, seq)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := tr.chunk(nil, seq)
			data, _ := json.Marshal(protocol.BulkChunk{Transfer: tr.id, Seq: seq, Chunks: tr.chunks, Data: raw})
			want, _ := protocol.AppendBody(nil, protocol.EventBulk, data)
			if string(body) != string(want) {
				t.Fatalf("size %d, chunk %d: event differs from encoding/json's:\n%.120s\n%.120s", size, seq, body, want)
			}
		}
	}
}
