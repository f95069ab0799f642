package soak

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
type Proxy struct {
	ln      net.Listener
	targets []string // host:port
	hold    time.Duration
	retry   int // rewrite "retry: N" to this many ms; <= 0: leave it

	next atomic.Int64 // round robin over targets

	mu     sync.Mutex
	links  map[*link]struct{}
	last   map[string]int // session → target of its last stream
	closed bool
	wg     sync.WaitGroup // accept loop and pipes

	cuts     [numCuts]atomic.Int64
	streams  []atomic.Int64 // streams opened, by target
	requests []atomic.Int64 // other requests, by target
	moves    atomic.Int64   // streams of a session on another target than its last
	refused  atomic.Int64   // dials a target refused

	logMu sync.Mutex
	log   []string // the last requests relayed, for a diagnosis
	seq   atomic.Int64
}

// A ProxyOption changes a Proxy.
type ProxyOption func(*Proxy)

// WithHold sets how long a stalled connection stays open before both sides
// are reset (default 3 s).
func WithHold(d time.Duration) ProxyOption { return func(p *Proxy) { p.hold = d } }

// WithRetry makes the proxy rewrite the "retry:" field of every stream to ms
// milliseconds, written with as many digits as the server's value (leading
// zeros are digits to the spec), so the frame keeps its length and an HTTP
// chunk its size. A client that honours retry then comes back after ms,
// not after the server's 2 s, and a soak of seconds sees dozens of cuts. A
// value that does not fit in the digits is left alone.
func WithRetry(ms int) ProxyOption { return func(p *Proxy) { p.retry = ms } }

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
		ln: ln, targets: slices.Clone(targets), hold: 3 * time.Second,
		links: make(map[*link]struct{}), last: make(map[string]int),
		streams: make([]atomic.Int64, len(targets)), requests: make([]atomic.Int64, len(targets)),
	}
	for _, o := range opts {
		o(p)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.accept()
	}()
	return p, nil
}

// URL is the proxy's base URL, "http://127.0.0.1:PORT".
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

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

// Streams is the number of connections now carrying a stream (stalled ones
// excluded).
func (p *Proxy) Streams() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for l := range p.links {
		if l.stream.Load() && !l.stalled() {
			n++
		}
	}
	return n
}

// CutOne cuts one stream chosen at random the way given; it reports whether
// there was one.
func (p *Proxy) CutOne(rng *rand.Rand, how Cut) bool {
	p.mu.Lock()
	var streams []*link
	for l := range p.links {
		if l.stream.Load() && !l.stalled() {
			streams = append(streams, l)
		}
	}
	p.mu.Unlock()
	if len(streams) == 0 {
		return false
	}
	l := streams[rng.IntN(len(streams))]
	p.cuts[how].Add(1)
	switch how {
	case CutClose:
		l.close(false)
	case CutReset:
		l.close(true)
	case CutStall:
		l.stall(p.hold)
	}
	return true
}

// Close stops listening and closes every connection, stalled or not, then
// waits for the relay goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.close(false)
	}
	p.wg.Wait()
	return err
}

// accept relays each connection until the listener closes.
// Runs in its own goroutine.
func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, target := p.dial()
		if s == nil {
			c.Close()
			continue
		}
		l := &link{p: p, id: p.seq.Add(1), target: target, client: c.(*net.TCPConn), server: s, stallC: make(chan struct{}), done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		p.links[l] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go l.pipe(l.server, l.client, true)
		go l.pipe(l.client, l.server, false)
	}
}

// dial connects to the next target that accepts, starting from the one
// whose turn it is; nil if none does.
func (p *Proxy) dial() (*net.TCPConn, int) {
	start := int(p.next.Add(1)-1) % len(p.targets)
	for i := range p.targets {
		k := (start + i) % len(p.targets)
		s, err := net.DialTimeout("tcp", p.targets[k], 2*time.Second)
		if err == nil {
			return s.(*net.TCPConn), k
		}
		p.refused.Add(1)
	}
	return nil, -1
}

// A link is one relayed connection.
type link struct {
	p              *Proxy
	id             int64
	target         int // index in p.targets
	client, server *net.TCPConn
	stream         atomic.Bool // the last request on it was GET /events

	stallOnce sync.Once
	stallC    chan struct{} // closed when stalled
	timer     *time.Timer   // resets a stalled link; guarded by stallOnce
	closeOnce sync.Once
	done      chan struct{} // closed when both sides are closed
}

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

// close closes both sides, with an RST if reset; only the first call counts.
func (l *link) close(reset bool) {
	l.closeOnce.Do(func() {
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
}

// pipe copies src to dst. up is the client-to-server direction, where
// requests are sniffed; the other way, retry fields are rewritten. Once the
// link is stalled nothing more is relayed, and even the end of one side is
// not passed on until the hold is over.
// Runs in its own goroutine.
func (l *link) pipe(dst, src *net.TCPConn, up bool) {
	defer l.p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if l.stalled() {
			<-l.done
			return
		}
		if n > 0 {
			b := buf[:n]
			if up {
				l.sniff(b)
			} else {
				if l.p.retry > 0 {
					rewriteRetry(b, l.p.retry)
				}
				l.sniffSession(b)
			}
			if _, werr := dst.Write(b); werr != nil {
				break
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

// sniff marks the link a stream when a request for one starts in b. Go's
// HTTP clients write a request in one go, and a connection carries one
// request at a time, so a request line starts a read.
func (l *link) sniff(b []byte) {
	if line, _, ok := bytes.Cut(b, []byte("\r\n")); ok && bytes.Contains(line, []byte(" HTTP/1.1")) {
		last := ""
		if _, rest, ok := bytes.Cut(b, []byte("\r\nLast-Event-Id: ")); ok {
			v, _, _ := bytes.Cut(rest, []byte("\r\n"))
			last = string(v)
		}
		l.p.note(fmt.Sprintf("%s link %d: %s (Last-Event-ID %q)", time.Now().Format("15:04:05.000"), l.id, line, last))
	}
	switch {
	case bytes.HasPrefix(b, []byte("GET /events")):
		l.stream.Store(true)
		l.p.streams[l.target].Add(1)
		l.p.noteStream(b, l.target)
	case bytes.HasPrefix(b, []byte("GET ")), bytes.HasPrefix(b, []byte("POST ")), bytes.HasPrefix(b, []byte("OPTIONS ")):
		l.stream.Store(false)
		l.p.requests[l.target].Add(1)
	}
}

// noteStream notes the target of a stream request b of a session, counting
// a move when the session's stream before was on another target.
func (p *Proxy) noteStream(b []byte, target int) {
	line, _, _ := bytes.Cut(b, []byte(" HTTP/"))
	_, id, ok := bytes.Cut(line, []byte("session="))
	if !ok {
		return
	}
	id, _, _ = bytes.Cut(id, []byte("&"))
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.last[string(id)]; ok && prev != target {
		p.moves.Add(1)
	}
	p.last[string(id)] = target
}

var sessionEvent = []byte("\nevent: session\ndata: ")

// sniffSession notes the position and session of a session event in b (the
// server writes one at the start of each stream, in one piece).
func (l *link) sniffSession(b []byte) {
	i := bytes.Index(b, sessionEvent)
	if i < 0 {
		return
	}
	j := bytes.LastIndex(b[:i], []byte("id: "))
	data, _, _ := bytes.Cut(b[i+len(sessionEvent):], []byte("\n"))
	if j >= 0 {
		l.p.note(fmt.Sprintf("%s link %d: session event at %s %s", time.Now().Format("15:04:05.000"), l.id, b[j+4:i], data))
	}
}

func (p *Proxy) note(s string) {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	p.log = append(p.log, s)
	if len(p.log) > 2000 {
		p.log = append([]string(nil), p.log[1000:]...)
	}
}

// Requests returns the last requests relayed that contain s, one a line:
// when, on which connection, the request line and its Last-Event-ID.
func (p *Proxy) Requests(s string) []string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	var out []string
	for _, r := range p.log {
		if strings.Contains(r, s) {
			out = append(out, r)
		}
	}
	return out
}

var retryField = []byte("\nretry: ")

// rewriteRetry replaces the digits of every "retry:" field in b with ms,
// zero-padded to the same width, when it fits.
func rewriteRetry(b []byte, ms int) {
	for i := 0; ; {
		j := bytes.Index(b[i:], retryField)
		if j < 0 {
			return
		}
		start := i + j + len(retryField)
		end := start
		for end < len(b) && b[end] >= '0' && b[end] <= '9' {
			end++
		}
		if end < len(b) && b[end] == '\n' && end > start {
			if s := fmt.Sprintf("%0*d", end-start, ms); len(s) == end-start {
				copy(b[start:end], s)
			}
		}
		i = end
	}
}
