package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// A poller reads many streams' sockets from one goroutine, with its own
// epoll set, instead of a goroutine per stream parked in Go's netpoller.
// The load generator shares the machine with the server it measures, and a
// goroutine per stream costs, for each write the server makes, a wake-up,
// a read, the events, another read that finds nothing (EAGAIN) and a park.
// Here one epoll_wait returns every socket with data; each is read once
// into its stream's buffer and its events handled on the spot. The epoll
// set is level-triggered, so a socket still holding data after its one read
// comes back in the next round: a stream sending faster than it is read
// (bulk) cannot hold up the others.
// Linux only, like the /proc figures.
//
// A stream belongs to the poller from add on: only the poller's goroutine
// reads it and touches what its reader owns.
//
// The poller never blocks in epoll_wait: it asks with a zero timeout and,
// when nothing is ready, parks in Go's netpoller on the epoll set itself,
// which is readable when one of its sockets is. A goroutine blocked in a
// system call would tie up a thread, and the runtime's monitor would have
// to hand its processor to another one each time.
type poller struct {
	epfd int
	file *os.File // epfd, in Go's netpoller

	mu      sync.Mutex
	streams map[int32]*stream // by socket; guarded by mu
}

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking, so that os.NewFile puts it in the netpoller.
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	return &poller{epfd: epfd, file: os.NewFile(uintptr(epfd), "epoll"), streams: map[int32]*stream{}}, nil
}

// add hands st, whose socket is detached, to the poller. The caller has
// handled what st's buffer held already (st.readable).
func (p *poller) add(st *stream) error {
	fd := st.src.fd // st is the poller's from the Unlock on
	p.mu.Lock()
	p.streams[int32(fd)] = st
	p.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.mu.Lock()
		delete(p.streams, int32(fd))
		p.mu.Unlock()
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// run reads the streams whose sockets are ready until ctx ends. A stream
// that ends (dropped, or bye) leaves the set and is closed.
func (p *poller) run(ctx context.Context) error {
	rc, err := p.file.SyscallConn()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { p.file.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	evs := make([]syscall.EpollEvent, 256)
	var ready []*stream
	for ctx.Err() == nil {
		var (
			n     int
			errno error
		)
		err := rc.Read(func(fd uintptr) bool {
			n, errno = syscall.EpollWait(int(fd), evs, 0)
			return n > 0 || (errno != nil && errno != syscall.EINTR)
		})
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil // ctx ended
		case err != nil:
			return err
		case errno != nil:
			return os.NewSyscallError("epoll_wait", errno)
		}
		ready = ready[:0]
		p.mu.Lock()
		for _, ev := range evs[:n] {
			ready = append(ready, p.streams[ev.Fd])
		}
		p.mu.Unlock()
		for _, st := range ready {
			if st != nil && st.readable(ctx) {
				p.remove(st)
			}
		}
	}
	return nil
}

func (p *poller) remove(st *stream) {
	p.mu.Lock()
	delete(p.streams, int32(st.src.fd))
	p.mu.Unlock()
	_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, st.src.fd, nil)
	st.close()
}

// close releases the epoll set; the streams still in it stay open.
func (p *poller) close() { p.file.Close() }

// pollers spreads streams over one poller per core the load generator may
// use, round robin.
type pollers struct {
	all  []*poller
	next int // guarded by mu
	mu   sync.Mutex
}

// startPollers starts the pollers under wg until ctx ends.
func startPollers(ctx context.Context, wg *sync.WaitGroup) (*pollers, error) {
	ps := &pollers{}
	for range max(1, runtime.GOMAXPROCS(0)) {
		p, err := newPoller()
		if err != nil {
			ps.close()
			return nil, err
		}
		ps.all = append(ps.all, p)
		wg.Go(func() {
			if err := p.run(ctx); err != nil {
				panic(fmt.Sprintf("loadgen: poller: %v", err)) // a bug: the set is ours
			}
		})
	}
	return ps, nil
}

// hold handles the events st's buffer holds already (the handshake may
// have read past the session event) and hands st to the next poller. A
// stream that ended in the meantime is closed and left out, with its end
// recorded as a drop.
func (ps *pollers) hold(ctx context.Context, st *stream) error {
	if st.readable(ctx) {
		st.close()
		return nil
	}
	ps.mu.Lock()
	p := ps.all[ps.next%len(ps.all)]
	ps.next++
	ps.mu.Unlock()
	return p.add(st)
}

// close releases the epoll sets once the pollers have stopped.
func (ps *pollers) close() {
	for _, p := range ps.all {
		p.close()
	}
}

// errWouldBlock: the socket holds nothing more to read for now.
var errWouldBlock = errors.New("loadgen: would block")

// fdReader reads a socket a poller owns, never blocking, and once a round:
// after one read it has nothing more until the poller says the socket is
// ready again (ready).
type fdReader struct {
	fd   int  // -1 once closed
	read bool // read once since the poller said the socket was ready
}

// ready allows the next read.
func (r *fdReader) ready() { r.read = false }

func (r *fdReader) Read(p []byte) (int, error) {
	if r.read || len(p) == 0 {
		return 0, errWouldBlock
	}
	r.read = true
	for {
		n, err := syscall.Read(r.fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, errWouldBlock
		case err != nil:
			return 0, os.NewSyscallError("read", err)
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// detach takes conn's socket out of Go's netpoller for a poller: it
// duplicates the descriptor (the socket stays non-blocking) and closes
// conn, which leaves the socket open under the duplicate.
func detach(conn net.Conn) (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("loadgen: %T has no socket", conn)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, dupErr := -1, error(nil)
	if err := rc.Control(func(s uintptr) {
		syscall.ForkLock.RLock()
		defer syscall.ForkLock.RUnlock()
		if fd, dupErr = syscall.Dup(int(s)); dupErr == nil {
			syscall.CloseOnExec(fd)
		}
	}); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, os.NewSyscallError("dup", dupErr)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, os.NewSyscallError("fcntl", err)
	}
	conn.Close()
	return fd, nil
}
