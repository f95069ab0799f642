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
	"strconv"
	"sync/atomic"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// maxLine bounds one SSE line. The longest line of the protocol is a bulk
// chunk, 48 KiB raw, about 66 KiB as base64 in JSON; a decoder's buffer
// starts at 4 KiB and grows only on the streams that meet such a line.
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
// response parser (status, headers, chunked body) and protocol.Decoder, the
// project's WHATWG parser: one goroutine and two small buffers a stream, and
// a dropped connection stays dropped and is counted.
type stream struct {
	session string
	node    int    // the target holding the stream
	post    int    // the target its session's POSTs go to
	postURL string // that target's base URL
	conn    net.Conn
	dec     *protocol.Decoder
	chat    *chatLog // nil: no chat matching
	clock   time.Time
	split   bool // keep local and relayed chat latencies apart (a cluster)

	// Read by Run while the reader runs.
	events, bytes, ticks, chatRecv atomic.Int64
	ended                          atomic.Bool

	// Ticks at the window's start and end, and whether the stream had
	// ended by the window's end; set and read by Run only.
	windowTicks   [2]int64
	endedInWindow bool

	// Owned by the reader; read by Run after it returned.
	ids       idTracker
	lat       Latencies
	local     Latencies // cluster: chats posted to this stream's node
	relayed   Latencies // cluster: chats posted to another node
	unmatched int64
	endReason string
	bulk      *bulkReceiver // only on the bulk stream
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
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
	return st, nil
}

// handshake sends the GET, checks the answer and reads the first event,
// which must be session.
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
	resp, err := http.ReadResponse(bufio.NewReader(st.conn), &http.Request{Method: http.MethodGet})
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
	st.dec = protocol.NewDecoder(countReader{resp.Body, &st.bytes}, maxLine)
	m, err := st.dec.NextRaw()
	if err != nil {
		return fmt.Errorf("events: first event: %w", err)
	}
	if m.Name != protocol.EventSession {
		return fmt.Errorf("events: first event is %q, want %q", m.Name, protocol.EventSession)
	}
	st.handle(m)
	// No deadline from here on: the stream is ended by closing it.
	return st.conn.SetDeadline(time.Time{})
}

// run reads events until ctx ends (the run is over) or the stream ends on
// its own (a drop, recorded in endReason). Runs in its own goroutine.
func (st *stream) run(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { st.conn.Close() })
	defer stop()
	defer st.conn.Close()
	for {
		m, err := st.dec.NextRaw()
		if err != nil {
			if ctx.Err() == nil {
				st.endReason = endReason(err)
				st.ended.Store(true)
			}
			return
		}
		if st.handle(m) {
			st.ended.Store(true)
			return
		}
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
// m.Data is the decoder's buffer, read only during the call: most events
// (ticks) never need their data as a string, and a bulk chunk is decoded
// straight from it.
func (st *stream) handle(m protocol.RawMessage) bool {
	st.events.Add(1)
	id, err := strconv.ParseUint(m.ID, 10, 64)
	hasID := err == nil
	switch m.Name {
	case protocol.EventSession:
		if hasID {
			st.ids.position(id)
		} else {
			st.ids.noID()
		}
		return false
	case protocol.EventBye:
		var bye protocol.Bye
		_ = json.Unmarshal(m.Data, &bye)
		st.endReason = "bye " + bye.Reason
		return true
	case protocol.EventGap:
		var gap protocol.Gap
		_ = json.Unmarshal(m.Data, &gap)
		if hasID {
			st.ids.gap(id, gap.Missed)
		} else {
			st.ids.noID()
		}
		return false
	}
	if hasID {
		st.ids.event(id)
	} else {
		st.ids.noID()
	}
	switch m.Name {
	case protocol.EventChat:
		if st.chat == nil || bytes.Contains(m.Data, []byte(`"history":true`)) {
			return false // a replay of an older message is not a delivery
		}
		if seq, ok := st.chat.match(string(m.Data)); ok {
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
			st.bulk.handle(m, time.Since(st.clock))
		}
	case protocol.EventTuned:
	default:
		st.ticks.Add(1)
	}
	return false
}
