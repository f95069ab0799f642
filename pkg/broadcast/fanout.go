package broadcast

import (
	"runtime"
	"sync"
)

// writeDirect writes what a fan-out (a chat, a tick) left to its caller to
// each stream in sts, outside every lock of the hub: written one by one,
// thousands of sockets take tens of milliseconds, which no POST, attach or
// tick should wait for. Each stream's ring keeps the order, so a later
// event written meanwhile by another fan-out or by the stream itself is no
// matter.
func writeDirect(sts *[]*Stream) {
	eachParallel(*sts, (*Stream).writeDirect)
	putDirect(sts)
}

// putDirect gives a fan-out's list of streams back to directPool.
func putDirect(sts *[]*Stream) {
	clear(*sts) // let ended streams go
	*sts = (*sts)[:0]
	directPool.Put(sts)
}

// directPool holds the lists of streams a fan-out writes: one per chat or
// tick would be a stream pointer per session, garbage many times a second.
var directPool = sync.Pool{New: func() any { return new([]*Stream) }}

// perWorker is the fewest streams worth another goroutine: below it, the
// goroutine costs more than the writes it takes off the caller.
const perWorker = 256

// eachParallel calls f for every stream of sts, split across up to
// GOMAXPROCS goroutines, and returns when all are done. A write is mostly
// the kernel's work, and a stream's goroutine, which wrote it before, ran on
// any core: one goroutine writing every socket would hold a many-core
// server to one core's worth of writes. The goroutines are the caller's:
// started and waited for here.
func eachParallel(sts []*Stream, f func(*Stream)) {
	workers := min(runtime.GOMAXPROCS(0), len(sts)/perWorker)
	if workers <= 1 {
		for _, st := range sts {
			f(st)
		}
		return
	}
	var wg sync.WaitGroup
	size := (len(sts) + workers - 1) / workers
	for part := range workers - 1 {
		wg.Go(func() {
			for _, st := range sts[part*size : min((part+1)*size, len(sts))] {
				f(st)
			}
		})
	}
	for _, st := range sts[(workers-1)*size:] {
		f(st)
	}
	wg.Wait()
}
