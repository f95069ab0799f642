package cluster_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// A front is the load balancer of the cluster soak: a TCP relay that sends
// each new connection to the next node in turn, with no stickiness at all,
// and cuts the connections carrying an event stream on demand, the ways
// networks do (as internal/soak.Proxy does for one server, which takes one
// target only). A node that refuses connections (killed, shut down) is
// skipped, as a balancer's health check would. Every client connection is
// its own upstream connection: keep-alive POSTs stay on one node, so the
// soak's clients open a connection per request to be spread.
type front struct {
	ln    net.Listener
	nodes []string // host:port
	names []string // the nodes' names, for the record
	hold  time.Duration
	retry int // rewrite "retry: N" to this many ms

	next atomic.Int64

	mu     sync.Mutex
	links  map[*frontLink]struct{}
	last   map[string]int // session → node of its last stream
	closed bool
	wg     sync.WaitGroup

	cuts      [3]atomic.Int64 // close, reset, stall
	streams   []atomic.Int64  // streams opened, by node
	posts     []atomic.Int64  // other requests, by node
	moves     atomic.Int64    // streams of a session on another node than its last one
	refusals  atomic.Int64    // dials a node refused
	fallovers atomic.Int64    // connections sent to a later node for that
}

// Ways a front cuts a stream.
const (
	cutClose = iota // FIN both ways
	cutReset        // RST both ways
	cutStall        // relay nothing, tell nobody; RST after hold
)

func newFront(nodes []*node, hold time.Duration, retryMS int) (*front, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("front: %w", err)
	}
	f := &front{
		ln: ln, hold: hold, retry: retryMS,
		links: make(map[*frontLink]struct{}), last: make(map[string]int),
		streams: make([]atomic.Int64, len(nodes)), posts: make([]atomic.Int64, len(nodes)),
	}
	for _, n := range nodes {
		u, err := url.Parse(n.URL)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("front: %w", err)
		}
		f.nodes = append(f.nodes, u.Host)
		f.names = append(f.names, n.Node.Name())
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.accept()
	}()
	return f, nil
}

func (f *front) URL() string { return "http://" + f.ln.Addr().String() }

// accept relays connections until the listener closes. Runs in its own
// goroutine.
func (f *front) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		start := int(f.next.Add(1)-1) % len(f.nodes)
		var s net.Conn
		node := -1
		for i := range f.nodes {
			k := (start + i) % len(f.nodes)
			if s, err = net.DialTimeout("tcp", f.nodes[k], 2*time.Second); err == nil {
				node = k
				if i > 0 {
					f.fallovers.Add(1)
				}
				break
			}
			f.refusals.Add(1)
		}
		if node < 0 {
			c.Close()
			continue
		}
		l := &frontLink{f: f, node: node, client: c.(*net.TCPConn), server: s.(*net.TCPConn), stallC: make(chan struct{}), done: make(chan struct{})}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		f.links[l] = struct{}{}
		f.wg.Add(2)
		f.mu.Unlock()
		go l.pipe(l.server, l.client, true)
		go l.pipe(l.client, l.server, false)
	}
}

// cut cuts one stream chosen at random the given way; false if there was
// none.
func (f *front) cut(rng *rand.Rand, how int) bool {
	f.mu.Lock()
	var streams []*frontLink
	for l := range f.links {
		if l.stream.Load() && !l.stalled() {
			streams = append(streams, l)
		}
	}
	f.mu.Unlock()
	if len(streams) == 0 {
		return false
	}
	l := streams[rng.IntN(len(streams))]
	f.cuts[how].Add(1)
	switch how {
	case cutClose:
		l.close(false)
	case cutReset:
		l.close(true)
	case cutStall:
		l.stall(f.hold)
	}
	return true
}

// Close stops listening, closes every connection and waits for the relays.
func (f *front) Close() error {
	f.mu.Lock()
	f.closed = true
	links := make([]*frontLink, 0, len(f.links))
	for l := range f.links {
		links = append(links, l)
	}
	f.mu.Unlock()
	err := f.ln.Close()
	for _, l := range links {
		l.close(false)
	}
	f.wg.Wait()
	return err
}

// A frontLink is one relayed connection.
type frontLink struct {
	f              *front
	node           int
	client, server *net.TCPConn
	stream         atomic.Bool // the last request on it was GET /events

	stallOnce sync.Once
	stallC    chan struct{}
	timer     *time.Timer // guarded by stallOnce
	closeOnce sync.Once
	done      chan struct{}
}

func (l *frontLink) stalled() bool {
	select {
	case <-l.stallC:
		return true
	default:
		return false
	}
}

func (l *frontLink) stall(hold time.Duration) {
	l.stallOnce.Do(func() {
		close(l.stallC)
		l.timer = time.AfterFunc(hold, func() { l.close(true) })
	})
}

func (l *frontLink) close(reset bool) {
	l.closeOnce.Do(func() {
		if reset {
			l.client.SetLinger(0)
			l.server.SetLinger(0)
		}
		l.client.Close()
		l.server.Close()
		l.f.mu.Lock()
		delete(l.f.links, l)
		l.f.mu.Unlock()
		close(l.done)
	})
	l.stallOnce.Do(func() {})
	if l.timer != nil {
		l.timer.Stop()
	}
}

// pipe copies src to dst: requests are sniffed going up, retry fields
// rewritten coming down. A stalled link relays nothing more. Runs in its
// own goroutine.
func (l *frontLink) pipe(dst, src *net.TCPConn, up bool) {
	defer l.f.wg.Done()
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
			} else if l.f.retry > 0 {
				rewriteRetry(b, l.f.retry)
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
	l.close(false)
}

// sniff tells streams from other requests (Go's HTTP client writes a
// request's head in one write) and notes which node each session's streams
// land on.
func (l *frontLink) sniff(b []byte) {
	const get = "GET /events?session="
	switch {
	case bytes.HasPrefix(b, []byte(get)):
		l.stream.Store(true)
		l.f.streams[l.node].Add(1)
		id, _, _ := bytes.Cut(b[len(get):], []byte(" "))
		id, _, _ = bytes.Cut(id, []byte("&"))
		l.f.mu.Lock()
		if prev, ok := l.f.last[string(id)]; ok && prev != l.node {
			l.f.moves.Add(1)
		}
		l.f.last[string(id)] = l.node
		l.f.mu.Unlock()
	case bytes.HasPrefix(b, []byte("GET ")), bytes.HasPrefix(b, []byte("POST ")):
		l.stream.Store(false)
		l.f.posts[l.node].Add(1)
	}
}

var retryField = []byte("\nretry: ")

// rewriteRetry replaces the digits of every "retry:" field in b with ms,
// zero-padded to the same width (the frame keeps its length), when it fits.
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
