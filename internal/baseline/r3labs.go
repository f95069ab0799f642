package baseline

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sync"

	"github.com/r3labs/sse/v2"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// R3labs is the same service written the way a typical user of
// github.com/r3labs/sse/v2 would: sse.New() with its defaults, one r3labs
// stream per session (server.CreateStream(sessionID)), every tick and chat
// sent with server.Publish to the stream of each session that wants it, and
// /events handed to the library's ServeHTTP with ?stream=ID.
//
// One stream per session, not one per channel: an r3labs connection reads
// exactly one stream, so a stream per channel would mean a connection per
// channel per client, and chat could not share the session's connection.
//
// The defaults are kept, including AutoReplay, which is what gives events
// their ids (the index in the stream's event log) and lets a reconnecting
// client catch up. Its cost is also kept: the event log of a stream is
// never trimmed, so a session's memory grows with every event it receives.
// The session event is the first event published to the stream, so it gets
// id 0 and the ticks and chats after it 1, 2, 3, … as in PROTOCOL.md.
type R3labs struct {
	sse    *sse.Server
	ch     *channelSet
	mux    *http.ServeMux
	ctx    context.Context
	cancel context.CancelFunc
	ticks  sync.WaitGroup

	mu       sync.RWMutex
	sessions map[string]uint64 // tuned channels by session id; guarded by mu
	chatID   int64             // guarded by mu
	closed   bool              // guarded by mu
	handlers sync.WaitGroup    // /events handlers; Add under mu
}

// NewR3labs starts an r3labs baseline with the given channels (the defaults
// when empty).
func NewR3labs(channels ...broadcast.ChannelConfig) (*R3labs, error) {
	cs, err := newChannelSet(channels)
	if err != nil {
		return nil, err
	}
	b := &R3labs{sse: sse.New(), ch: cs, mux: http.NewServeMux(), sessions: map[string]uint64{}}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.mux.HandleFunc("GET /channels", cs.serveChannels)
	b.mux.HandleFunc("POST /sessions", b.createSession)
	b.mux.HandleFunc("GET /events", b.events)
	b.mux.HandleFunc("POST /sessions/{id}/chat", b.chat)
	cs.run(b.ctx, &b.ticks, b.tick)
	return b, nil
}

func (b *R3labs) ServeHTTP(w http.ResponseWriter, r *http.Request) { b.mux.ServeHTTP(w, r) }

// Close stops the tickers, waits for the /events handlers (the HTTP server
// must have closed their connections: r3labs' own clean-up goroutine needs
// the stream to be running when a connection ends) and closes the streams.
func (b *R3labs) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.ticks.Wait()
	b.handlers.Wait()
	b.sse.Close()
}

func (b *R3labs) tick(index int, data []byte) {
	name := []byte(b.ch.cfgs[index].Name)
	bit := uint64(1) << index
	b.mu.RLock()
	defer b.mu.RUnlock()
	for id, tuned := range b.sessions {
		if tuned&bit != 0 {
			// A new Event each time: the event log stamps its id into it.
			b.sse.Publish(id, &sse.Event{Event: name, Data: data})
		}
	}
}

func (b *R3labs) createSession(w http.ResponseWriter, r *http.Request) {
	mask, ok := b.ch.sessionRequest(w, r)
	if !ok {
		return
	}
	id := newID()
	names := b.ch.names(mask)
	data, _ := json.Marshal(protocol.SessionEvent{Session: id, Channels: names})
	b.sse.CreateStream(id)
	b.sse.Publish(id, &sse.Event{Event: []byte(protocol.EventSession), Data: data})
	b.mu.Lock()
	b.sessions[id] = mask
	b.mu.Unlock()
	writeJSON(w, http.StatusCreated, protocol.SessionCreated{Session: id, Channels: names, Events: "/events?session=" + id})
}

func (b *R3labs) chat(w http.ResponseWriter, r *http.Request) {
	data, n, ok := chatRequest(w, r, b.nextChatID)
	if !ok {
		return
	}
	name := []byte(protocol.EventChat)
	b.mu.RLock()
	for sid := range b.sessions {
		b.sse.Publish(sid, &sse.Event{Event: name, Data: data})
	}
	b.mu.RUnlock()
	writeJSON(w, http.StatusAccepted, protocol.ChatAccepted{ID: n})
}

// nextChatID hands out a chat id and reports whether session exists.
func (b *R3labs) nextChatID(session string) (int64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.sessions[session]
	b.chatID++
	return b.chatID, ok
}

// events hands the session's stream to r3labs; when the client goes, the
// session and its stream go too.
func (b *R3labs) events(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("session")
	b.mu.Lock()
	_, ok := b.sessions[id]
	closed := b.closed
	if ok && !closed {
		b.handlers.Add(1)
	}
	b.mu.Unlock()
	if refuseStream(w, ok, false, closed) {
		return
	}
	defer b.handlers.Done()
	r.URL.RawQuery = url.Values{"stream": {id}}.Encode()
	b.sse.ServeHTTP(w, r)
	b.mu.Lock()
	delete(b.sessions, id)
	b.mu.Unlock()
	b.sse.RemoveStream(id)
}
