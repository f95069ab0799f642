package soak

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// A link is one relayed connection.
type link struct {
	p              *Proxy
	id             int64
	target         int // index in p.targets
	client, server *net.TCPConn
	stream         atomic.Bool  // the last request on it was GET /events
	last           atomic.Int64 // unix nanoseconds of the last byte either way
	ghosting       atomic.Bool  // its client side is closed for WithGhost

	stallOnce sync.Once
	stallC    chan struct{} // closed when stalled
	timer     *time.Timer   // resets a stalled link; guarded by stallOnce
	closeOnce sync.Once
	done      chan struct{} // closed when both sides are closed
}

// live reports whether l carries a stream and is not stalled.
func (l *link) live() bool { return l.stream.Load() && !l.stalled() }

func (l *link) stalled() bool {
	select {
	case <-l.stallC:
		return true
	default:
		return false
	}
}

// stall stops the relay now and resets both sides after hold.
func (l *link) stall(hold time.Duration) {
	l.stallOnce.Do(func() {
		close(l.stallC)
		l.timer = time.AfterFunc(hold, func() { l.close(true) })
	})
}

// close closes both sides, with an RST if reset; only the first call
// counts, and reports true.
func (l *link) close(reset bool) bool {
	did := false
	l.closeOnce.Do(func() {
		did = true
		if reset {
			l.client.SetLinger(0)
			l.server.SetLinger(0)
		}
		l.client.Close()
		l.server.Close()
		l.p.mu.Lock()
		delete(l.p.links, l)
		l.p.mu.Unlock()
		close(l.done)
	})
	// A stalled link closed early (Close) must not leave its timer behind.
	l.stallOnce.Do(func() {})
	if l.timer != nil {
		l.timer.Stop()
	}
	return did
}

// pipe copies src to dst. up is the client-to-server direction, where
// requests are sniffed (and a ghost held back); the other way, retry fields
// are rewritten and the rate is limited. Once the link is stalled nothing
// more is relayed, and even the end of one side is not passed on until the
// hold is over. Once it is ghosting, what the server sends is thrown away.
// Runs in its own goroutine.
func (l *link) pipe(dst, src *net.TCPConn, up bool) {
	defer l.p.wg.Done()
	buf := make([]byte, 32<<10)
	rate := 0
	if !up {
		rate = l.p.rate
	}
	if rate > 0 {
		buf = buf[:16<<10] // smaller steps, a smoother rate
	}
	start, sent := time.Now(), 0
	for reads := 0; ; reads++ {
		n, err := src.Read(buf)
		if l.stalled() {
			<-l.done
			return
		}
		if n > 0 {
			l.last.Store(time.Now().UnixNano())
			b := buf[:n]
			if up {
				if reads > 0 && l.p.ghost > 0 && bytes.HasPrefix(b, []byte("GET /events")) && l.p.ghostFired.CompareAndSwap(false, true) {
					l.haunt(b)
					return
				}
				l.sniff(b)
			} else {
				if l.p.retry > 0 {
					rewriteRetry(b, l.p.retry)
				}
				l.sniffSession(b)
			}
			if !l.ghosting.Load() {
				if _, werr := dst.Write(b); werr != nil && !l.ghosting.Load() {
					break
				}
			}
			if rate > 0 {
				sent += n
				due := time.Duration(sent) * time.Second / time.Duration(rate)
				if ahead := due - time.Since(start); ahead > 0 {
					time.Sleep(ahead)
				}
			}
		}
		if err != nil {
			break
		}
	}
	if l.stalled() {
		<-l.done
		return
	}
	// One side ended: so does the other.
	l.close(false)
}

// expire resets the link once it has been silent for idle or open for
// life (each <= 0: never), counting the cut in Timeouts.
// Runs in its own goroutine until the link closes.
func (l *link) expire(idle, life time.Duration) {
	defer l.p.wg.Done()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	born := time.Now()
	for {
		select {
		case <-l.done:
			return
		case now := <-tick.C:
			cut := life > 0 && now.Sub(born) >= life
			cut = cut || idle > 0 && now.Sub(time.Unix(0, l.last.Load())) >= idle
			if cut {
				if l.close(true) {
					l.p.timeouts.Add(1)
				}
				return
			}
		}
	}
}

// haunt is WithGhost: it closes the client's side of the link at once,
// sends the held request b to the server after the delay, and keeps the
// server's side open, its answer thrown away, until the link closes.
// Called by the client-to-server pipe, which it ends.
func (l *link) haunt(b []byte) {
	l.ghosting.Store(true) // before the close, so the other pipe discards
	l.client.Close()
	line, _, _ := bytes.Cut(b, []byte("\r\n"))
	l.p.note(fmt.Sprintf("%s link %d: held back %s, client side closed", time.Now().Format("15:04:05.000"), l.id, line))
	t := time.NewTimer(l.p.ghost)
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.done:
		return
	}
	_, err := l.server.Write(b)
	l.p.note(fmt.Sprintf("%s link %d: ghost sent (%v)", time.Now().Format("15:04:05.000"), l.id, err))
	close(l.p.ghosted)
	<-l.done
}
