package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// An HTTP/1.1 stream writes its chunks straight to its connection: net/http
// writes the response head (Transfer-Encoding: chunked) and, when the
// handler returns, the last chunk, as for any response; in between, each
// write of the stream goes out as one chunk in one system call. The bytes
// on the wire are what net/http would send, and the connection stays
// net/http's (it still notices the client leave, Shutdown and Close still
// see it, it may serve the next request), but a write skips net/http's
// layers: the response's and the connection's buffers, the chunk writer
// and its formatted size line, a lock and a flush through each. With one
// write per stream for each chat, at thousands of streams the cost of a
// write is the server's capacity. HTTP/2 streams share their connection
// and keep the ResponseWriter.
//
// This holds because net/http writes to a connection only when its handler
// calls the ResponseWriter, or has returned: the stream flushes the head
// first, and from then on it alone writes.

type connKey struct{}

// withConn returns ctx carrying the connection the requests on it came on
// (http.Server.ConnContext).
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// chunkedStream returns the writer for a stream answered on w, after
// WriteHeader: a chunkedWriter on the request's connection for a GET over
// HTTP/1.1, w itself when it cannot be one (HTTP/2, HTTP/1.0 or HEAD,
// whose bodies are not chunked; a server without connContext). w must be
// net/http's own: a wrapper that rewrote the body would be bypassed.
func chunkedStream(w http.ResponseWriter, r *http.Request) http.ResponseWriter {
	c, ok := r.Context().Value(connKey{}).(net.Conn)
	if !ok || r.ProtoMajor != 1 || r.ProtoMinor < 1 || r.Method != http.MethodGet {
		return w
	}
	// net/http chunks an HTTP/1.1 body that has neither length nor
	// transfer coding set.
	if h := w.Header(); h.Get("Content-Length") != "" || h.Get("Transfer-Encoding") != "" {
		return w
	}
	if err := http.NewResponseController(w).Flush(); err != nil {
		return w
	}
	cw := &chunkedWriter{ResponseWriter: w, conn: c}
	// A plain TCP connection can also be written without blocking, so a
	// chat's fan-out can write the stream itself; TLS cannot (its records
	// are the tls.Conn's to make).
	if sc, ok := c.(syscall.Conn); ok && canTryWrite {
		if raw, err := sc.SyscallConn(); err == nil {
			t := &tryChunkedWriter{chunkedWriter: cw, raw: raw}
			t.writeFn = t.writeOnce
			return t
		}
	}
	return cw
}

// A chunkedWriter is the ResponseWriter of an HTTP/1.1 stream whose head is
// written: each Write is one chunk, written to the connection. Header still
// answers, and SetWriteDeadline is the connection's, for
// http.ResponseController. It does not buffer, so it has no Flush.
type chunkedWriter struct {
	http.ResponseWriter
	conn net.Conn
}

// framePool holds the buffers a small chunk is framed in: size line, data
// and CRLF in one piece, so that it leaves in one write.
var framePool = sync.Pool{New: func() any { b := make([]byte, 0, maxFramed+16); return &b }}

// maxFramed is the largest chunk copied into a frame buffer: every tick and
// chat write, and most replays. A larger one (a bulk run) is written from
// where it is, in one vectored write.
const maxFramed = 4 << 10

var crlf = []byte("\r\n")

// Write sends b as one chunk and reports how many bytes of b went out.
func (c *chunkedWriter) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil // an empty chunk would end the body
	}
	var n, head int
	var err error
	if len(b) <= maxFramed {
		n, head, err = c.writeFramed(b)
	} else {
		n, head, err = c.writeVectored(b)
	}
	if err != nil {
		// The body may end mid-chunk: the connection can carry nothing
		// more. Closed, net/http's last chunk fails at once instead of
		// waiting, without a deadline, on a client that stopped reading.
		c.conn.Close()
	}
	return min(max(n-head, 0), len(b)), err
}

// frame returns the chunk b framed (size line, b, CRLF) in a buffer of
// framePool, and the length of the size line.
func frame(b []byte) (fp *[]byte, f []byte, head int) {
	if len(b) <= maxFramed {
		fp = framePool.Get().(*[]byte)
	} else {
		fp = new([]byte)
	}
	f = appendChunkHead((*fp)[:0], len(b))
	head = len(f)
	f = append(append(f, b...), crlf...)
	return fp, f, head
}

// putFrame gives a frame's buffer back to framePool, unless it is a large
// one's.
func putFrame(fp *[]byte, f []byte) {
	if cap(f) <= maxFramed+16 {
		*fp = f[:0]
		framePool.Put(fp)
	}
}

// writeFramed writes the chunk b from a frame buffer; it returns the bytes
// written and the length of the size line.
func (c *chunkedWriter) writeFramed(b []byte) (n, head int, err error) {
	fp, f, head := frame(b)
	n, err = c.conn.Write(f)
	putFrame(fp, f)
	return n, head, err
}

// writeVectored writes the chunk b from where it is, in one writev.
func (c *chunkedWriter) writeVectored(b []byte) (n, head int, err error) {
	h := appendChunkHead(nil, len(b))
	bufs := net.Buffers{h, b, crlf}
	n64, err := bufs.WriteTo(c.conn)
	return int(n64), len(h), err
}

// appendChunkHead appends the size line of a chunk of n bytes.
func appendChunkHead(dst []byte, n int) []byte {
	return append(strconv.AppendInt(dst, int64(n), 16), crlf...)
}

// SetWriteDeadline sets the connection's write deadline; the stream sets it
// through http.ResponseController.
func (c *chunkedWriter) SetWriteDeadline(t time.Time) error {
	return c.conn.SetWriteDeadline(t)
}

// A tryChunkedWriter is a chunkedWriter on a connection it can also write
// without blocking (broadcast.TryWriter): one write(2) on the socket, which
// the kernel takes whole, in part, or not at all (EAGAIN: the socket holds
// its low-water mark of unsent bytes), and never a wait in the poller. The
// rest of a chunk it did not take is kept, and Drain writes it with the
// connection's blocking Write and deadline, so the chunk framing on the
// wire is the same either way.
type tryChunkedWriter struct {
	*chunkedWriter
	raw syscall.RawConn

	// The chunk a TryWrite left unfinished: its frame, how much of it
	// went out, the length of its size line and of its data; or the error
	// that ended the connection.
	rest          []byte
	restBox       *[]byte
	sent, head, n int
	err           error

	// writeFn is writeOnce, made once: a closure made for each write
	// would be garbage on every write of every stream. It writes frame
	// and leaves the outcome in wrote and werr.
	writeFn func(fd uintptr) bool
	frame   []byte
	wrote   int
	werr    error
}

// writeOnce is the RawConn.Write callback of TryWrite: one write(2), and
// never a wait in the poller (the rest is Drain's).
func (c *tryChunkedWriter) writeOnce(fd uintptr) bool {
	c.wrote, c.werr = tryWrite(fd, c.frame)
	return true
}

// TryWrite sends b as one chunk without waiting, and reports how many
// bytes of b went out; the rest is Drain's.
func (c *tryChunkedWriter) TryWrite(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if c.err != nil || c.rest != nil {
		return 0, errors.New("chunked: write before drain")
	}
	fp, f, head := frame(b)
	c.frame, c.wrote, c.werr = f, 0, nil
	err := c.raw.Write(c.writeFn)
	k, werr := c.wrote, c.werr
	c.frame = nil
	if err == nil {
		err = werr
	}
	// An expired write deadline fails the write before it starts: it is
	// the blocking write's, which Drain makes, to report.
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) || errors.Is(err, os.ErrDeadlineExceeded) {
		err = nil
	}
	k = max(k, 0)
	if err != nil {
		c.conn.Close() // as Write: the body may end mid-chunk
		c.err = err
		putFrame(fp, f)
		return min(max(k-head, 0), len(b)), err
	}
	if k == len(f) {
		putFrame(fp, f)
		return len(b), nil
	}
	c.rest, c.restBox, c.sent, c.head, c.n = f, fp, k, head, len(b)
	return min(max(k-head, 0), len(b)), nil
}

// Drain writes the rest of the chunk TryWrite left, waiting for the
// connection, and reports how many more bytes of that chunk's data went
// out.
func (c *tryChunkedWriter) Drain() (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.rest == nil {
		return 0, nil
	}
	k, err := c.conn.Write(c.rest[c.sent:])
	before := min(max(c.sent-c.head, 0), c.n)
	after := min(max(c.sent+k-c.head, 0), c.n)
	putFrame(c.restBox, c.rest)
	c.rest, c.restBox = nil, nil
	if err != nil {
		c.conn.Close()
		c.err = err
	}
	return after - before, err
}

// Write sends b as one chunk, after the rest of one TryWrite left.
func (c *tryChunkedWriter) Write(b []byte) (int, error) {
	if c.err != nil || c.rest != nil {
		if _, err := c.Drain(); err != nil {
			return 0, err
		}
	}
	return c.chunkedWriter.Write(b)
}
