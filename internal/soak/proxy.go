package soak

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A Cut is a way a connection through the Proxy ends.
type Cut int

const (
	// CutClose closes both sides with a FIN: the server sees a client that
	// went away, the client a stream that ended (mid-event, usually).
	CutClose Cut = iota
	// CutReset resets both sides (SO_LINGER 0, so an RST): the server's next
	// write to the stream fails with an error, the client's read fails.
	CutReset
	// CutStall stops relaying in both directions and tells neither side, as
	// a NAT or proxy that dropped the connection does. The client can notice
	// only the silence; the server's writes fill the socket buffers and
	// block (its write timeout ends them). Both sides are reset after the
	// proxy's hold time.
	CutStall
	numCuts
)

func (c Cut) String() string {
	switch c {
	case CutClose:
		return "close"
	case CutReset:
		return "reset"
	case CutStall:
		return "stall"
	}
	return "Cut(" + strconv.Itoa(int(c)) + ")"
}

// A Proxy relays TCP connections to a server, or spreads them over several
// as a load balancer with no stickiness does, and cuts the ones carrying an
// event stream on demand. It tells a stream by its request: a connection is
// a stream from a "GET /events" until the next request on it, so POSTs are
// never cut. It is safe for concurrent use.
//
// With several targets each new connection goes to the next in turn; one
// that refuses the connection (a server killed or shut down) is skipped, as
// a balancer's health check would. A keep-alive connection stays on its
// target: a client that wants each request spread opens one per request.
//
// Besides the soaks, the tests of other packages use it wherever they need
// a connection to fail under a client: CutAll for a network loss, Down and
// Up for an outage, and the options WithDownRate, WithIdleCut, WithLifetime
// and WithGhost for the quirks of slow links, middleboxes and retrying
// clients.
type Proxy struct {
	addr    string   // host:port listened on, kept across Down and Up
	targets []string // host:port
	hold    time.Duration
	retry   int           // rewrite "retry: N" to this many ms; <= 0: leave it
	rate    int           // server-to-client bytes a second per connection; <= 0: no limit
	upBuf   int           // receive buffer of the server side; <= 0: the kernel's
	idle    time.Duration // reset a connection silent this long; <= 0: never
	life    time.Duration // reset a connection this old; <= 0: never
	ghost   time.Duration // hold back a ghost copy this long; <= 0: no ghost

	next atomic.Int64 // round robin over targets

	outage sync.Mutex // serialises Down and Up

	mu     sync.Mutex
	ln     net.Listener // nil while down
	links  map[*link]struct{}
	last   map[string]int // session → target of its last stream
	closed bool
	wg     sync.WaitGroup // accept loops, pipes and watchers

	ghostFired atomic.Bool   // the ghost request has been picked
	ghosted    chan struct{} // closed once it went to the server

	cuts     [numCuts]atomic.Int64
	accepted atomic.Int64 // connections accepted
	timeouts atomic.Int64 // connections cut by WithIdleCut or WithLifetime

	streams  []atomic.Int64 // streams opened, by target
	requests []atomic.Int64 // other requests, by target
	moves    atomic.Int64   // streams of a session on another target than its last
	refused  atomic.Int64   // dials a target refused

	logMu sync.Mutex
	log   []string // the last requests relayed, for a diagnosis
	seq   atomic.Int64
}

// NewProxy listens on a free loopback port and relays to targets
// ("127.0.0.1:PORT"), one or more. Close it to stop.
func NewProxy(targets []string, opts ...ProxyOption) (*Proxy, error) {
	if len(targets) == 0 {
		return nil, errors.New("soak: proxy: no target")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("soak: proxy: %w", err)
	}
	p := &Proxy{
		addr: ln.Addr().String(), ln: ln, targets: slices.Clone(targets), hold: 3 * time.Second,
		links: make(map[*link]struct{}), last: make(map[string]int),
		streams: make([]atomic.Int64, len(targets)), requests: make([]atomic.Int64, len(targets)),
		ghosted: make(chan struct{}),
	}
	for _, o := range opts {
		o(p)
	}
	p.wg.Add(1)
	go p.accept(ln)
	return p, nil
}

// URL is the proxy's base URL, "http://127.0.0.1:PORT". It stays the same
// across Down and Up.
func (p *Proxy) URL() string { return "http://" + p.addr }

// Cuts returns how many connections were cut each way.
func (p *Proxy) Cuts() map[Cut]int64 {
	out := make(map[Cut]int64, numCuts)
	for c := range numCuts {
		out[c] = p.cuts[c].Load()
	}
	return out
}

// A TargetStats counts the requests a Proxy relayed to one target.
type TargetStats struct {
	Streams  int64 // GET /events
	Requests int64 // any other
}

// Targets returns the requests relayed to each target, in NewProxy's order.
func (p *Proxy) Targets() []TargetStats {
	out := make([]TargetStats, len(p.targets))
	for i := range out {
		out[i] = TargetStats{Streams: p.streams[i].Load(), Requests: p.requests[i].Load()}
	}
	return out
}

// Moves counts the streams of a session (GET /events?session=ID) relayed to
// another target than the session's stream before: with several targets,
// how often sessions had to move between servers.
func (p *Proxy) Moves() int64 { return p.moves.Load() }

// Refused counts the connections a target refused; each was offered to the
// next target instead.
func (p *Proxy) Refused() int64 { return p.refused.Load() }

// Conns counts the connections the proxy accepted, cut or not.
func (p *Proxy) Conns() int64 { return p.accepted.Load() }

// Timeouts counts the connections reset by WithIdleCut or WithLifetime.
func (p *Proxy) Timeouts() int64 { return p.timeouts.Load() }

// Streams is the number of connections now carrying a stream (stalled ones
// excluded).
func (p *Proxy) Streams() int { return len(p.linksWhere((*link).live)) }

// CutOne cuts one stream chosen at random the way given; it reports whether
// there was one.
func (p *Proxy) CutOne(rng *rand.Rand, how Cut) bool {
	streams := p.linksWhere((*link).live)
	if len(streams) == 0 {
		return false
	}
	p.cut(streams[rng.IntN(len(streams))], how)
	return true
}

// CutAll cuts every connection being relayed now (stalled ones aside), the
// way given, streams or not: a network loss, as a client with requests in
// flight sees it. New connections are still accepted. It returns how many
// it cut.
func (p *Proxy) CutAll(how Cut) int {
	links := p.linksWhere(func(l *link) bool { return !l.stalled() })
	for _, l := range links {
		p.cut(l, how)
	}
	return len(links)
}

// linksWhere returns the links open now for which keep is true.
func (p *Proxy) linksWhere(keep func(*link) bool) []*link {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*link
	for l := range p.links {
		if keep(l) {
			out = append(out, l)
		}
	}
	return out
}

// cut cuts l the way given and counts it.
func (p *Proxy) cut(l *link, how Cut) {
	p.cuts[how].Add(1)
	switch how {
	case CutClose:
		l.close(false)
	case CutReset:
		l.close(true)
	case CutStall:
		l.stall(p.hold)
	}
}

// Close stops listening and closes every connection, stalled or not, then
// waits for the relay goroutines.
func (p *Proxy) Close() error {
	ln, links := p.unlisten(true)
	var err error
	if ln != nil {
		err = ln.Close()
	}
	for _, l := range links {
		l.close(false)
	}
	p.wg.Wait()
	return err
}

// unlisten takes the listener away (nil if there was none), so that no
// new link joins, and returns it with the links open now; closing marks the
// proxy closed for good.
func (p *Proxy) unlisten(closing bool) (net.Listener, []*link) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = p.closed || closing
	ln := p.ln
	p.ln = nil
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	return ln, links
}

// accept relays each connection from ln until ln closes; a connection
// accepted just as ln was closed (Down, Close) is dropped.
// Runs in its own goroutine.
func (p *Proxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		s, target := p.dial()
		if s == nil {
			c.Close()
			continue
		}
		l := &link{p: p, id: p.seq.Add(1), target: target, client: c.(*net.TCPConn), server: s, stallC: make(chan struct{}), done: make(chan struct{})}
		l.last.Store(time.Now().UnixNano())
		watch := p.idle > 0 || p.life > 0
		p.mu.Lock()
		if p.closed || p.ln != ln {
			p.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		p.links[l] = struct{}{}
		p.wg.Add(2)
		if watch {
			p.wg.Add(1)
		}
		p.mu.Unlock()
		go l.pipe(l.server, l.client, true)
		go l.pipe(l.client, l.server, false)
		if watch {
			go l.expire(p.idle, p.life)
		}
	}
}

// dial connects to the next target that accepts, starting from the one
// whose turn it is; nil if none does.
func (p *Proxy) dial() (*net.TCPConn, int) {
	start := int(p.next.Add(1)-1) % len(p.targets)
	for i := range p.targets {
		k := (start + i) % len(p.targets)
		d := net.Dialer{Timeout: 2 * time.Second}
		if p.upBuf > 0 {
			// Before the connect, so the window the server sees is small
			// from the handshake on.
			d.Control = func(_, _ string, c syscall.RawConn) error {
				var serr error
				err := c.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, p.upBuf)
				})
				return errors.Join(err, serr)
			}
		}
		s, err := d.Dial("tcp", p.targets[k])
		if err == nil {
			return s.(*net.TCPConn), k
		}
		p.refused.Add(1)
	}
	return nil, -1
}

// Ghosted is closed once the request WithGhost held back has been sent to
// the server (or the attempt failed); never without WithGhost.
func (p *Proxy) Ghosted() <-chan struct{} { return p.ghosted }
