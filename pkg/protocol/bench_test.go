package protocol_test

import (
	"bytes"
	"testing"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// TestAppendEventAllocs checks that framing a tick into a buffer with room
// does not allocate: the hub frames every event once, but at channel rates.
func TestAppendEventAllocs(t *testing.T) {
	dst := make([]byte, 0, 256)
	data := []byte("Ж")
	var id uint64
	allocs := testing.AllocsPerRun(1000, func() {
		id++
		var err error
		dst, err = protocol.AppendEvent(dst[:0], id, protocol.ChannelOne, data)
		if err != nil {
			t.Fatal(err)
		}
		dst = protocol.AppendComment(dst, "ping\nagain")
		dst = protocol.AppendRetry(dst, protocol.RetryMillis)
	})
	if allocs != 0 {
		t.Errorf("AppendEvent, AppendComment and AppendRetry: %v allocs per run, want 0", allocs)
	}
}

// BenchmarkAppendEvent frames one small tick, reusing dst.
func BenchmarkAppendEvent(b *testing.B) {
	dst := make([]byte, 0, 256)
	data := []byte("Ж")
	b.ReportAllocs()
	var id uint64
	for b.Loop() {
		id++
		var err error
		dst, err = protocol.AppendEvent(dst[:0], id, protocol.ChannelOne, data)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(dst)))
}

// BenchmarkAppendBodyBulk frames the body of the largest bulk event: 48 KiB
// of raw data as base64 in JSON, about 64 KiB on one line.
func BenchmarkAppendBodyBulk(b *testing.B) {
	raw := bytes.Repeat([]byte{0xfb, 0x12, 0x7e, 0x00}, protocol.BulkChunkSize/4)
	data := bulkJSON(b, raw)
	dst := make([]byte, 0, len(data)+64)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		var err error
		dst, err = protocol.AppendBody(dst[:0], protocol.EventBulk, data)
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecoder decodes a stream as a client sees it: the retry and
// session preamble, then ticks of the three channels with a ping, and one
// bulk chunk per 256 ticks. Throughput is per stream byte.
func BenchmarkDecoder(b *testing.B) {
	for _, bb := range []struct {
		name string
		bulk bool
	}{{"ticks", false}, {"ticks+bulk", true}} {
		b.Run(bb.name, func(b *testing.B) {
			stream := benchStream(b, bb.bulk)
			events := 0
			for d := protocol.NewDecoder(bytes.NewReader(stream), 128<<10); ; events++ {
				if _, err := d.Next(); err != nil {
					break
				}
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(stream)))
			for b.Loop() {
				d := protocol.NewDecoder(bytes.NewReader(stream), 128<<10)
				n := 0
				for {
					if _, err := d.Next(); err != nil {
						break
					}
					n++
				}
				if n != events {
					b.Fatalf("decoded %d events, want %d", n, events)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
		})
	}
}

func benchStream(tb testing.TB, bulk bool) []byte {
	tb.Helper()
	var (
		s   []byte
		err error
	)
	s = protocol.AppendRetry(s, protocol.RetryMillis)
	s, err = protocol.AppendEvent(s, 0, protocol.EventSession, []byte(`{"session":"0123456789abcdef0123456789abcdef","channels":["one","two","three"],"resumed":false}`))
	if err != nil {
		tb.Fatal(err)
	}
	chunk := bulkJSON(tb, bytes.Repeat([]byte{1, 2, 3}, protocol.BulkChunkSize/3))
	names := []string{protocol.ChannelOne, protocol.ChannelTwo, protocol.ChannelThree}
	ticks := []string{"Ж", "漢", "→"}
	for i := range 1024 {
		s, err = protocol.AppendEvent(s, uint64(i+1), names[i%3], []byte(ticks[i%3]))
		if err != nil {
			tb.Fatal(err)
		}
		if i%100 == 99 {
			s = protocol.AppendComment(s, "ping")
		}
		if bulk && i%256 == 255 {
			s, err = protocol.AppendEvent(s, uint64(i+1), protocol.EventBulk, chunk)
			if err != nil {
				tb.Fatal(err)
			}
		}
	}
	return s
}
