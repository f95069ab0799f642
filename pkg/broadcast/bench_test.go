package broadcast

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPublish measures the hub's side of one channel tick: appending it
// to every tuned session's history and waking its stream. ns/delivery is the
// cost per listener.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 1000, 10000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			h := benchHub(b)
			for range n {
				if _, err := h.NewSession([]string{"one"}); err != nil {
					b.Fatal(err)
				}
			}
			ev := &event{body: []byte("event: one\ndata: x\n\n"), at: time.Now().UnixNano()}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				h.deliverTicks([]dueTick{{c: h.channels[0], ev: ev}})
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
		})
	}
}

// discardWriter counts bytes and drops them, like a client that keeps up.
type discardWriter struct {
	n atomic.Int64
}

func (w *discardWriter) Header() http.Header         { return http.Header{} }
func (w *discardWriter) WriteHeader(int)             {}
func (w *discardWriter) Write(p []byte) (int, error) { w.n.Add(int64(len(p))); return len(p), nil }

// Like a real connection's writer, it supports deadlines and flushing.
func (w *discardWriter) SetWriteDeadline(time.Time) error { return nil }
func (w *discardWriter) FlushError() error                { return nil }

// BenchmarkDeliver measures a tick end to end: fan-out plus every stream's
// goroutine framing it (per-session id + shared body) and writing it.
func BenchmarkDeliver(b *testing.B) {
	for _, n := range []int{1, 1000, 10000} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			h := benchHub(b)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w := &discardWriter{}
			done := make(chan struct{}, n)
			var last []*Session
			for range n {
				s, _ := h.NewSession([]string{"one"})
				st, err := h.Attach(s, Position{})
				if err != nil {
					b.Fatal(err)
				}
				go func() { st.Run(ctx, w); done <- struct{}{} }()
				last = append(last, s)
			}
			ev := &event{body: []byte("event: one\ndata: x\n\n"), at: time.Now().UnixNano()}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				h.deliverTicks([]dueTick{{c: h.channels[0], ev: ev}})
			}
			// Wait until every stream has written every event.
			for _, s := range last {
				for {
					s.mu.Lock()
					st := s.stream
					caught := st != nil && st.cursor >= s.ring.next
					s.mu.Unlock()
					if caught {
						break
					}
					time.Sleep(50 * time.Microsecond)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
			cancel()
			for range n {
				<-done
			}
		})
	}
}

func benchHub(b *testing.B) *Hub {
	chans := DefaultChannelsAt(1e-7)
	// A burst of b.N events is not what the 30 s window is for: keep the
	// ring at its event minimum so memory stays what a real load sees.
	h, err := New(WithChannels(chans...), WithMaxStreams(20000), WithMaxSessions(20000), WithReplay(1024, 0, 1024))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close(context.Background()) })
	return h
}
