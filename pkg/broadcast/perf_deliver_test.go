package broadcast

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// pacedWriter discards what it is given and counts flushes; the flush that
// completes a round tells the benchmark, so it can wait without spinning.
type pacedWriter struct {
	flushes *atomic.Int64
	target  *atomic.Int64
	done    chan struct{}
}

func (w *pacedWriter) Header() http.Header         { return http.Header{} }
func (w *pacedWriter) WriteHeader(int)             {}
func (w *pacedWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *pacedWriter) SetWriteDeadline(time.Time) error {
	return nil
}

func (w *pacedWriter) FlushError() error {
	if w.flushes.Add(1) == w.target.Load() {
		w.done <- struct{}{}
	}
	return nil
}

// BenchmarkDeliverPaced measures what one event costs the server when every
// stream keeps up, as on a real server at the default rates: each tick is
// pushed to every session only after every stream has written the last one,
// so each delivery is one wake-up, one gather and one write of its own
// (BenchmarkDeliver, which publishes as fast as it can, measures batches
// instead). cpu-ns/delivery is the process's CPU time (user + system, every
// goroutine) per delivery; the write itself is a discard, so the syscall a
// real connection pays is not in it.
func BenchmarkDeliverPaced(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			h := benchHub(b)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var flushes, target atomic.Int64
			w := &pacedWriter{flushes: &flushes, target: &target, done: make(chan struct{}, 1)}
			ended := make(chan struct{}, n)
			sessions := make([]*Session, 0, n)
			target.Store(int64(n)) // every stream's preamble
			for range n {
				s, err := h.NewSession([]string{"one"})
				if err != nil {
					b.Fatal(err)
				}
				st, err := h.Attach(s, Position{})
				if err != nil {
					b.Fatal(err)
				}
				go func() { st.Run(ctx, w); ended <- struct{}{} }()
				sessions = append(sessions, s)
			}
			<-w.done
			ev := &event{body: []byte("event: one\ndata: x\n\n"), at: time.Now().UnixNano()}
			b.ReportAllocs()
			before := cpuTime(b)
			b.ResetTimer()
			for range b.N {
				target.Add(int64(n))
				for _, s := range sessions {
					s.push(ev)
				}
				<-w.done
			}
			b.StopTimer()
			cpu := cpuTime(b) - before
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*n), "cpu-ns/delivery")
			cancel()
			for range n {
				<-ended
			}
		})
	}
}

// cpuTime is the process's user + system time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
