package baseline

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// rawQueue is each subscriber's buffered channel. A publisher never blocks:
// when the queue is full the event is dropped, and since its id was already
// taken the client sees a hole in the ids (the load generator counts it).
const rawQueue = 1024

// Raw is a net/http SSE broadcaster written the way a careful engineer writes
// one, with none of xhrsse's features: a mutex-protected map of subscribers,
// each with a buffered channel; publishers encode an event once and send it
// to every channel under the mutex; each /events handler is one goroutine
// that, when woken, drains everything queued, writes it with one Write and
// flushes once. This is the yardstick every ratio is taken against.
//
// With naive set (NewRawNaive, "raw-naive") the handler writes and flushes
// one event at a time instead: what one writes first, kept to show what the
// draining costs and saves, never the reference.
type Raw struct {
	naive  bool
	ch     *channelSet
	mux    *http.ServeMux
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // tickers and handlers

	mu     sync.Mutex
	subs   map[string]*rawSub // by session id; guarded by mu
	chatID int64              // guarded by mu
	closed bool               // guarded by mu
}

type rawSub struct {
	tuned    uint64 // channel bits
	ch       chan rawMsg
	next     uint64 // last id given out; guarded by Raw.mu
	attached bool   // guarded by Raw.mu
}

type rawMsg struct {
	id   uint64
	body []byte // "event: …\ndata: …\n\n", shared by every subscriber
}

// NewRaw starts the draining raw baseline with the given channels (the
// defaults when empty).
func NewRaw(channels ...broadcast.ChannelConfig) (*Raw, error) {
	return newRaw(false, channels)
}

// NewRawNaive starts the raw baseline that writes and flushes once per
// event.
func NewRawNaive(channels ...broadcast.ChannelConfig) (*Raw, error) {
	return newRaw(true, channels)
}

func newRaw(naive bool, channels []broadcast.ChannelConfig) (*Raw, error) {
	cs, err := newChannelSet(channels)
	if err != nil {
		return nil, err
	}
	b := &Raw{naive: naive, ch: cs, mux: http.NewServeMux(), subs: map[string]*rawSub{}}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.mux.HandleFunc("GET /channels", cs.serveChannels)
	b.mux.HandleFunc("POST /sessions", b.createSession)
	b.mux.HandleFunc("GET /events", b.events)
	b.mux.HandleFunc("POST /sessions/{id}/chat", b.chat)
	b.mux.HandleFunc("GET /debug/blob", serveBlob)
	cs.run(b.ctx, &b.wg, b.tick)
	return b, nil
}

func (b *Raw) ServeHTTP(w http.ResponseWriter, r *http.Request) { b.mux.ServeHTTP(w, r) }

// Close stops the tickers and ends every stream.
func (b *Raw) Close() {
	b.mu.Lock()
	b.closed = true // no handler joins b.wg from now on
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
}

func (b *Raw) tick(index int, data []byte) {
	body, _ := protocol.AppendBody(nil, b.ch.cfgs[index].Name, data)
	bit := uint64(1) << index
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.subs {
		if s.tuned&bit != 0 {
			b.sendLocked(s, body)
		}
	}
}

// sendLocked queues body for s without blocking. b.mu must be held.
func (b *Raw) sendLocked(s *rawSub, body []byte) {
	s.next++
	select {
	case s.ch <- rawMsg{id: s.next, body: body}:
	default: // full: dropped, and the id shows it
	}
}

func (b *Raw) createSession(w http.ResponseWriter, r *http.Request) {
	mask, ok := b.ch.sessionRequest(w, r)
	if !ok {
		return
	}
	id := newID()
	b.mu.Lock()
	b.subs[id] = &rawSub{tuned: mask, ch: make(chan rawMsg, rawQueue)}
	b.mu.Unlock()
	writeJSON(w, http.StatusCreated, protocol.SessionCreated{Session: id, Channels: b.ch.names(mask), Events: "/events?session=" + id})
}

func (b *Raw) chat(w http.ResponseWriter, r *http.Request) {
	data, n, ok := chatRequest(w, r, b.nextChatID)
	if !ok {
		return
	}
	body, _ := protocol.AppendBody(nil, protocol.EventChat, data)
	b.mu.Lock()
	for _, s := range b.subs {
		b.sendLocked(s, body)
	}
	b.mu.Unlock()
	writeJSON(w, http.StatusAccepted, protocol.ChatAccepted{ID: n})
}

// nextChatID hands out a chat id and reports whether session exists.
func (b *Raw) nextChatID(session string) (int64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.subs[session]
	b.chatID++
	return b.chatID, ok
}

// events streams a session: one goroutine (this handler) that writes what is
// queued, one event at a time (naive) or all of it at once. The session ends
// with its stream.
func (b *Raw) events(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("session")
	b.mu.Lock()
	s, ok := b.subs[id]
	busy := ok && s.attached
	if ok && !busy && !b.closed {
		s.attached = true
		b.wg.Add(1)
	}
	closed := b.closed
	b.mu.Unlock()
	if refuseStream(w, ok, busy, closed) {
		return
	}
	defer b.wg.Done()
	defer func() {
		b.mu.Lock()
		delete(b.subs, id)
		b.mu.Unlock()
	}()

	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	data, _ := json.Marshal(protocol.SessionEvent{Session: id, Channels: b.ch.names(s.tuned)})
	buf := protocol.AppendRetry(nil, protocol.RetryMillis)
	buf, _ = protocol.AppendEvent(buf, 0, protocol.EventSession, data)
	if _, err := w.Write(buf); err != nil {
		return
	}
	flusher.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-b.ctx.Done():
			return
		case m := <-s.ch:
			buf = appendMsg(buf[:0], m)
			if !b.naive {
				buf = drain(buf, s.ch)
			}
			if _, err := w.Write(buf); err != nil {
				return
			}
			flusher.Flush()
		}
	}
}

func appendMsg(buf []byte, m rawMsg) []byte {
	buf = protocol.AppendID(buf, m.id)
	return append(buf, m.body...)
}

// drain appends every message already queued on ch, without waiting.
func drain(buf []byte, ch <-chan rawMsg) []byte {
	for {
		select {
		case m := <-ch:
			buf = appendMsg(buf, m)
		default:
			return buf
		}
	}
}

// maxBlob bounds GET /debug/blob.
const maxBlob = 1 << 30

// serveBlob answers GET /debug/blob?bytes=N with N pseudo-random bytes, made
// the way xhrsse makes a generated bulk transfer (ChaCha8, 48 KiB at a time),
// as one plain HTTP response: the yardstick for bulk over SSE.
func serveBlob(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.ParseInt(r.URL.Query().Get("bytes"), 10, 64)
	if err != nil || n < 0 || n > maxBlob {
		writeError(w, http.StatusBadRequest, "bytes must be 0 … 1 GiB")
		return
	}
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], rand.Uint64())
	gen := rand.NewChaCha8(seed)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	buf := make([]byte, protocol.BulkChunkSize)
	for n > 0 {
		p := buf[:min(int64(len(buf)), n)]
		_, _ = gen.Read(p)
		if _, err := w.Write(p); err != nil {
			return
		}
		n -= int64(len(p))
	}
}
