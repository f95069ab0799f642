package client

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// fake is a hand-written server for the cases the real one never produces:
// odd framing, broken transfers, scripted failures. Each GET /events is
// numbered from 0 and handed to stream; POST /sessions to open.
type fake struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	gets    []http.Header // headers of each GET /events
	queries []string      // session= of each GET /events
	opens   []protocol.CreateSession

	stream func(w http.ResponseWriter, r *http.Request, n int)
	open   func(w http.ResponseWriter, r *http.Request, n int, body protocol.CreateSession)
	bulk   func(w http.ResponseWriter, r *http.Request)
	tune   func(w http.ResponseWriter, r *http.Request)
}

func newFake(t *testing.T) *fake {
	f := &fake{t: t}
	f.open = func(w http.ResponseWriter, r *http.Request, n int, body protocol.CreateSession) {
		id := fmt.Sprintf("S%d", n+1)
		ch := body.Channels
		if ch == nil {
			ch = []string{}
		}
		writeJSON(w, http.StatusCreated, protocol.SessionCreated{Session: id, Channels: ch, Events: "/events?session=" + id})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /sessions", func(w http.ResponseWriter, r *http.Request) {
		var body protocol.CreateSession
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeJSON(w, 400, protocol.Error{Error: err.Error()})
			return
		}
		f.mu.Lock()
		n := len(f.opens)
		f.opens = append(f.opens, body)
		f.mu.Unlock()
		f.open(w, r, n, body)
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		n := len(f.gets)
		f.gets = append(f.gets, r.Header.Clone())
		f.queries = append(f.queries, r.URL.Query().Get("session"))
		f.mu.Unlock()
		f.stream(w, r, n)
	})
	mux.HandleFunc("POST /sessions/{id}/bulk", func(w http.ResponseWriter, r *http.Request) { f.bulk(w, r) })
	mux.HandleFunc("POST /sessions/{id}/channels", func(w http.ResponseWriter, r *http.Request) { f.tune(w, r) })
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) header(n int, key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n >= len(f.gets) {
		return "<no such request>"
	}
	return f.gets[n].Get(key)
}

func (f *fake) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.gets)
}

// session opens a session on the fake and returns it with a client.
func (f *fake) session(opts ...Option) (*Client, *Session) {
	f.t.Helper()
	c := newClient(f.t, f.srv.URL, opts...)
	s, err := c.Open(testCtx(f.t))
	if err != nil {
		f.t.Fatal(err)
	}
	return c, s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// startSSE writes the stream's headers.
func startSSE(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	flush(w)
}

func flush(w http.ResponseWriter) { _ = http.NewResponseController(w).Flush() }

// raw writes bytes to the stream and flushes them.
func raw(w http.ResponseWriter, s string) {
	_, _ = w.Write([]byte(s))
	flush(w)
}

// sessionFrame is the session event the fake writes first, at position pos.
func sessionFrame(id string, pos uint64, resumed bool, channels ...string) string {
	if channels == nil {
		channels = []string{}
	}
	data, _ := json.Marshal(protocol.SessionEvent{Session: id, Channels: channels, Resumed: resumed})
	b, _ := protocol.AppendEvent(nil, pos, protocol.EventSession, data)
	return string(b)
}

// frame encodes one event with the protocol's encoder.
func frame(id uint64, name string, data string) string {
	b, err := protocol.AppendEvent(nil, id, name, []byte(data))
	if err != nil {
		panic(err)
	}
	return string(b)
}

// hold keeps the stream open until the client goes.
func hold(r *http.Request) { <-r.Context().Done() }
