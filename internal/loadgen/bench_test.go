package loadgen

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// These benchmarks measure the load generator's own cost per event, which
// shares the machine with the server under test: see docs/PERFORMANCE.md.

// BenchmarkReadTicks decodes and accounts channel ticks as a stream reader
// does; ns/op is the cost of one event.
func BenchmarkReadTicks(b *testing.B) {
	var frame []byte
	for id := uint64(1); id <= 1000; id++ {
		frame, _ = protocol.AppendEvent(frame, id, "one", []byte("Ж"))
	}
	benchRead(b, frame, 1000)
}

// BenchmarkReadBulk decodes, base64-decodes and hashes bulk chunks; MB/s is
// raw (pre-base64) bytes.
func BenchmarkReadBulk(b *testing.B) {
	payload := make([]byte, protocol.BulkChunkSize)
	rand.NewChaCha8([32]byte{}).Read(payload)
	var frame []byte
	for seq := range 20 {
		data, _ := json.Marshal(protocol.BulkChunk{Transfer: "t", Seq: seq, Chunks: 1 << 30, Data: payload})
		frame, _ = protocol.AppendEvent(frame, uint64(seq+1), protocol.EventBulk, data)
	}
	b.SetBytes(int64(len(payload)) * 20)
	benchRead(b, frame, 20)
}

func benchRead(b *testing.B, frame []byte, events int) {
	b.ReportAllocs()
	for b.Loop() {
		st := &stream{dec: protocol.NewDecoder(bytes.NewReader(frame), maxLine), clock: time.Now(), bulk: newBulkReceiver()}
		st.ids.position(0)
		n := 0
		for {
			m, err := st.dec.NextRaw()
			if err != nil {
				break
			}
			st.handle(m)
			n++
		}
		if n != events || !st.ids.stats.Clean() {
			b.Fatalf("read %d events (ids %+v), want %d", n, st.ids.stats, events)
		}
	}
}
