package broadcast

import (
	"runtime"
	"sync"
	"testing"
)

// Every stream is written once, however the list splits across workers.
func TestEachParallelVisitsEveryStreamOnce(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	for _, n := range []int{0, 1, perWorker - 1, 2 * perWorker, 3*perWorker + 1, 10_000} {
		sts := make([]*Stream, n)
		for i := range sts {
			sts[i] = new(Stream)
		}
		var (
			mu   sync.Mutex
			seen = make(map[*Stream]int, n)
		)
		eachParallel(sts, func(st *Stream) {
			mu.Lock()
			seen[st]++
			mu.Unlock()
		})
		if len(seen) != n {
			t.Fatalf("n=%d: %d streams visited", n, len(seen))
		}
		for _, c := range seen {
			if c != 1 {
				t.Fatalf("n=%d: a stream visited %d times", n, c)
			}
		}
	}
}
