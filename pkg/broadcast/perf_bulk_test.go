package broadcast

import (
	"context"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// BenchmarkStreamBulk measures the server's side of a generated bulk
// transfer end to end: chunks published as the stream catches up, each
// generated, base64-encoded into its event and written (to a discarding
// writer, so no syscall). MB/s counts payload bytes.
//
// The hub writes at once (flush interval 0): with the default interval a
// transfer requested within 200 ms of the stream's last write waits for it
// (Stream.linger), and the benchmark would time that wait, not the work.
func BenchmarkStreamBulk(b *testing.B) {
	const size = 8 << 20
	h, err := New(WithChannels(DefaultChannelsAt(1e-7)...), WithFlushInterval(0))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close(context.Background()) })
	s, err := h.NewSession(nil)
	if err != nil {
		b.Fatal(err)
	}
	st, err := h.Attach(s, Position{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	go func() { st.Run(ctx, &discardWriter{}); close(ended) }()
	defer func() { cancel(); <-ended }()
	n := int64(size)
	if _, err := s.Bulk(protocol.BulkPost{Bytes: &n}); err != nil { // hash cached by size from here on
		b.Fatal(err)
	}
	waitBulk := func(done int64) {
		for h.stats.bulkDone.Load() < done {
			time.Sleep(100 * time.Microsecond)
		}
		for {
			s.mu.Lock()
			caught := st.cursor >= s.ring.next
			s.mu.Unlock()
			if caught {
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	waitBulk(1)
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Bulk(protocol.BulkPost{Bytes: &n}); err != nil {
			b.Fatal(err)
		}
		waitBulk(int64(i) + 2)
	}
}
