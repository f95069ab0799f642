package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// maxLine bounds one SSE line. The longest line of the protocol is a bulk
// chunk, 48 KiB raw, about 66 KiB as base64 in JSON; a stream's buffer
// starts at minRead and grows only on the streams that meet such a line.
const maxLine = 256 << 10

// handshakeTimeout bounds opening one stream: POST, dial, headers and the
// first event.
const handshakeTimeout = 15 * time.Second

// A stream is one SSE connection held by the load generator.
//
// Why not the r3labs client, which pkg/client wraps for the TUI: with
// 10,000 streams on two cores shared with the server, what the measuring
// side costs per event and per stream matters. r3labs goes through
// net/http's Transport (a read and a write goroutine per connection besides
// the caller's), splits events with its own scanner and copies every field
// into an Event, and reconnects on its own schedule, which would hide drops.
// Here a stream is one raw TCP connection, a hand-written GET, net/http's own
// response parser for the status and headers, then an eventReader fed by a
// poller: no goroutine and one buffer a stream, one read system call per
// arrival of data, no allocation per event; a dropped connection stays
// dropped and is counted.
type stream struct {
	session string
	node    int          // the target holding the stream
	post    int          // the target its session's POSTs go to
	postURL string       // that target's base URL
	conn    net.Conn     // until the handshake is done
	src     *fdReader    // its socket from then on, owned by a poller
	reader  *eventReader // reads conn, then src
	chat    *chatLog     // nil: no chat matching
	clock   time.Time
	split   bool // keep local and relayed chat latencies apart (a cluster)

	// Read by Run while the reader runs.
	events, bytes, ticks, chatRecv atomic.Int64
	ended                          atomic.Bool

	// Ticks at the window's start and end, and whether the stream had
	// ended by the window's end; set and read by Run only.
	windowTicks   [2]int64
	endedInWindow bool

	// Owned by the stream's poller; read by Run after the pollers stopped.
	ids       idTracker
	lat       Latencies
	local     Latencies // cluster: chats posted to this stream's node
	relayed   Latencies // cluster: chats posted to another node
	unmatched int64
	endReason string
	bulk      *bulkReceiver // only on the bulk stream
}

// opener holds what every stream needs to open.
type opener struct {
	targets      []target
	postAnywhere bool
	hc           *http.Client
	dialer       func(i int) *net.Dialer
	chat         *chatLog
	clock        time.Time
}

// createSession opens a session through the API: POST /sessions to base.
func (o *opener) createSession(ctx context.Context, base string, channels []string) (string, error) {
	body, _ := json.Marshal(protocol.CreateSession{Channels: channels})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/sessions", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := o.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("create session: %w", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("create session: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("create session: %s: %s", resp.Status, bytes.TrimSpace(answer))
	}
	var created protocol.SessionCreated
	if err := json.Unmarshal(answer, &created); err != nil || created.Session == "" {
		return "", fmt.Errorf("create session: bad answer %q", answer)
	}
	return created.Session, nil
}

// open creates a session tuned to channels, opens its stream on connection
// i and reads the session event. Stream i goes to target streamNode(i), its
// session is created on postNode(i). On error nothing is left open.
func (o *opener) open(ctx context.Context, i int, channels []string) (*stream, error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	node, post := streamNode(i, len(o.targets)), postNode(i, len(o.targets), o.postAnywhere)
	at, postURL := o.targets[node].host, o.targets[post].base
	session, err := o.createSession(ctx, postURL, channels)
	if err != nil {
		return nil, err
	}
	conn, err := o.dialer(i).DialContext(ctx, "tcp", at)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	st := &stream{
		session: session, node: node, post: post, postURL: postURL,
		conn: conn, chat: o.chat, clock: o.clock, split: len(o.targets) > 1,
	}
	if err := st.handshake(ctx, at); err != nil {
		conn.Close()
		return nil, err
	}
	fd, err := detach(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("events: %w", err)
	}
	st.conn, st.src = nil, &fdReader{fd: fd}
	st.reader.src = st.src
	return st, nil
}

// handshake sends the GET, checks the answer and reads the first event,
// which must be session, on the connection with ctx's deadline; open then
// hands the socket to a poller.
func (st *stream) handshake(ctx context.Context, host string) error {
	stop := context.AfterFunc(ctx, func() { st.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		st.conn.SetDeadline(dl)
	}
	path := "/events?session=" + url.QueryEscape(st.session)
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host +
		"\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\nUser-Agent: xhrsse-loadgen\r\n\r\n"
	if _, err := io.WriteString(st.conn, req); err != nil {
		return fmt.Errorf("events: write: %w", err)
	}
	br := bufio.NewReader(st.conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("events: %s: %s", resp.Status, bytes.TrimSpace(answer))
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return fmt.Errorf("events: content type %q", resp.Header.Get("Content-Type"))
	}
	chunked := slices.Equal(resp.TransferEncoding, []string{"chunked"})
	if !chunked && resp.ContentLength >= 0 {
		return fmt.Errorf("events: a body of %d bytes is not a stream", resp.ContentLength)
	}
	// The body starts with what the response parser read past the headers.
	pending, _ := br.Peek(br.Buffered())
	st.reader = newEventReader(st.conn, pending, chunked, maxLine, &st.bytes)
	ev, err := st.reader.next()
	if err != nil {
		return fmt.Errorf("events: first event: %w", err)
	}
	if string(ev.name) != protocol.EventSession {
		return fmt.Errorf("events: first event is %q, want %q", ev.name, protocol.EventSession)
	}
	st.handle(ev)
	return nil
}

// readable reads the stream's socket once and handles every whole event its
// buffer then holds; it reports whether the stream is over: it ended on its
// own (a drop, recorded in endReason, or bye). Its poller calls it when the
// socket has data; ctx is the run's streams.
func (st *stream) readable(ctx context.Context) bool {
	st.src.ready()
	for {
		ev, err := st.reader.next()
		if errors.Is(err, errWouldBlock) {
			return false
		}
		if err != nil {
			if ctx.Err() == nil {
				st.endReason = endReason(err)
				st.ended.Store(true)
			}
			return true
		}
		if st.handle(ev) {
			st.ended.Store(true)
			return true
		}
	}
}

// close closes the stream's socket, once.
func (st *stream) close() {
	if st.src != nil && st.src.fd >= 0 {
		syscall.Close(st.src.fd)
		st.src.fd = -1
	}
}

func endReason(err error) string {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed by server"
	case errors.Is(err, protocol.ErrEventTooLarge):
		return "event too large"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "read error"
}

// handle accounts one event; it reports whether the stream is over (bye).
// The event's buffers are the reader's, read only during the call: a tick is
// counted by its name and id alone, and a bulk chunk is decoded straight
// from its data.
func (st *stream) handle(ev *event) bool {
	st.events.Add(1)
	switch string(ev.name) {
	case protocol.EventSession:
		if ev.hasID {
			st.ids.position(ev.id)
		} else {
			st.ids.noID()
		}
		return false
	case protocol.EventBye:
		var bye protocol.Bye
		_ = json.Unmarshal(ev.data, &bye)
		st.endReason = "bye " + bye.Reason
		return true
	case protocol.EventGap:
		var gap protocol.Gap
		_ = json.Unmarshal(ev.data, &gap)
		if ev.hasID {
			st.ids.gap(ev.id, gap.Missed)
		} else {
			st.ids.noID()
		}
		return false
	}
	if ev.hasID {
		st.ids.event(ev.id)
	} else {
		st.ids.noID()
	}
	switch string(ev.name) {
	case protocol.EventChat:
		if st.chat == nil || bytes.Contains(ev.data, []byte(`"history":true`)) {
			return false // a replay of an older message is not a delivery
		}
		if seq, ok := st.chat.match(ev.data); ok {
			if d, node, ok := st.chat.latency(seq, time.Since(st.clock)); ok {
				st.lat.Add(d)
				if st.split {
					if node == st.node {
						st.local.Add(d)
					} else {
						st.relayed.Add(d)
					}
				}
				st.chatRecv.Add(1)
				return false
			}
		}
		st.unmatched++
	case protocol.EventBulk, protocol.EventBulkEnd:
		if st.bulk != nil {
			st.bulk.handle(ev, time.Since(st.clock))
		}
	case protocol.EventTuned:
	default:
		st.ticks.Add(1)
	}
	return false
}
