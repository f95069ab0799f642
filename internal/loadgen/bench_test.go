package loadgen

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/http/httputil"
	"syscall"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// These benchmarks measure the load generator's own cost per event, which
// shares the machine with the server under test: see docs/PERFORMANCE.md.
// Each feeds a stream's body as the server sends it (chunked, one chunk per
// write) through everything a stream reader does but the read system call;
// ns/event is the cost of one event.

// BenchmarkReadTicks reads channel ticks, two to a write as xhrsse's flush
// interval groups them.
func BenchmarkReadTicks(b *testing.B) {
	benchRead(b, chunkedBody(tickEvents(1000), 2), 1000, nil)
}

// BenchmarkReadChats reads chat events of this run, each matched to its
// send time, one to a write.
func BenchmarkReadChats(b *testing.B) {
	log := newChatLog("bench", time.Now(), 1000)
	var writes [][]byte
	for seq := range 1000 {
		log.markSent(seq, 0)
		data, _ := json.Marshal(protocol.Chat{ID: int64(seq + 1), Name: chatName, Text: log.text(seq), At: time.Now().UTC()})
		ev, _ := protocol.AppendEvent(nil, uint64(seq+1), protocol.EventChat, data)
		writes = append(writes, ev)
	}
	benchRead(b, chunkedBody(writes, 1), 1000, log)
}

// BenchmarkReadBulk decodes, base64-decodes and hashes bulk chunks; MB/s is
// raw (pre-base64) bytes.
func BenchmarkReadBulk(b *testing.B) {
	payload := make([]byte, protocol.BulkChunkSize)
	rand.NewChaCha8([32]byte{}).Read(payload)
	var writes [][]byte
	for seq := range 20 {
		data, _ := json.Marshal(protocol.BulkChunk{Transfer: "t", Seq: seq, Chunks: 1 << 30, Data: payload})
		ev, _ := protocol.AppendEvent(nil, uint64(seq+1), protocol.EventBulk, data)
		writes = append(writes, ev)
	}
	b.SetBytes(int64(len(payload)) * 20)
	benchRead(b, chunkedBody(writes, 1), 20, nil)
}

// tickEvents is n ticks of channel "one", ids 1 … n, an event each.
func tickEvents(n int) [][]byte {
	var out [][]byte
	for id := uint64(1); id <= uint64(n); id++ {
		ev, _ := protocol.AppendEvent(nil, id, "one", []byte("Ж"))
		out = append(out, ev)
	}
	return out
}

// chunkedBody frames events as a chunked HTTP body, perWrite events to a
// chunk, with its last chunk.
func chunkedBody(events [][]byte, perWrite int) []byte {
	var body bytes.Buffer
	w := httputil.NewChunkedWriter(&body)
	for i := 0; i < len(events); i += perWrite {
		w.Write(bytes.Join(events[i:min(i+perWrite, len(events))], nil))
	}
	w.Close()
	body.WriteString("\r\n")
	return body.Bytes()
}

func benchRead(b *testing.B, body []byte, events int, chat *chatLog) {
	b.ReportAllocs()
	cpu0 := processCPU()
	st := &stream{clock: time.Now(), bulk: newBulkReceiver(), chat: chat}
	var src bytes.Reader
	for b.Loop() {
		src.Reset(body)
		st.reader = newEventReader(&src, nil, true, maxLine, &st.bytes)
		st.ids = idTracker{}
		st.lat.samples = st.lat.samples[:0]
		st.ids.position(0)
		n := 0
		for {
			ev, err := st.reader.next()
			if err != nil {
				break
			}
			st.handle(ev)
			n++
		}
		if n != events || !st.ids.stats.Clean() || st.unmatched != 0 {
			b.Fatalf("read %d events (ids %+v, %d chats unmatched), want %d", n, st.ids.stats, st.unmatched, events)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
	// CPU time, the collector's included: on a busy machine the wall
	// clock also counts the time spent waiting for a core.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N*events), "cpu-ns/event")
}

// processCPU is the user and system CPU time the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
