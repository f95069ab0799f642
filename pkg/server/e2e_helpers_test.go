package server_test

// Helpers for the end-to-end tests: a real server from internal/testserver,
// plain requests and streams read with protocol.Decoder (internal/ssetest).
// They do not use pkg/client on purpose, so that these tests check the wire
// contract of docs/PROTOCOL.md independently of any one client.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"net/http"
	"regexp"
	"slices"
	"testing"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
	"github.com/xhrsse/xhrsse/pkg/server"
)

// fastChannels returns the default channels ticking rate times a second.
func fastChannels(rate float64) []broadcast.ChannelConfig {
	return broadcast.DefaultChannelsAt(rate)
}

// A harness is one running server and an HTTP client of its own, so that its
// idle connections can be closed when the test ends (goleak).
type harness struct {
	srv *testserver.Server
	hc  *http.Client
}

// start runs a server whose channels tick 100 times a second unless opts
// say otherwise (a later WithChannels wins).
func start(t *testing.T, opts ...broadcast.Option) *harness {
	t.Helper()
	return startConfig(t, server.Config{}, opts...)
}

func startConfig(t *testing.T, cfg server.Config, opts ...broadcast.Option) *harness {
	t.Helper()
	all := append([]broadcast.Option{broadcast.WithChannels(fastChannels(100)...)}, opts...)
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	// Registered before the server's own cleanup, so it runs after it: the
	// connections the server closed at shutdown are reaped here.
	t.Cleanup(tr.CloseIdleConnections)
	srv := testserver.StartConfig(t, cfg, all...)
	t.Cleanup(tr.CloseIdleConnections)
	return &harness{srv: srv, hc: &http.Client{Transport: tr}}
}

// sessionIDPattern: 128 bits or more in URL-safe base64, unpadded.
var sessionIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{22,}$`)

// request sends one request; a body is sent as is, with the headers given
// (no Content-Type unless hdr has one).
func (h *harness) request(t testing.TB, method, path string, hdr map[string]string, body string) ssetest.Reply {
	t.Helper()
	header := http.Header{}
	for k, v := range hdr {
		header.Set(k, v)
	}
	return ssetest.Do(t, h.hc, method, h.srv.URL+path, header, body)
}

// post sends a JSON body (none if body is empty).
func (h *harness) post(t testing.TB, path, body string) ssetest.Reply {
	t.Helper()
	hdr := map[string]string{}
	if body != "" {
		hdr["Content-Type"] = "application/json"
	}
	return h.request(t, http.MethodPost, path, hdr, body)
}

func (h *harness) get(t testing.TB, path string) ssetest.Reply {
	t.Helper()
	return h.request(t, http.MethodGet, path, nil, "")
}

// newSession opens a session tuned to channels and checks the 201 answer.
func (h *harness) newSession(t testing.TB, channels ...string) string {
	t.Helper()
	body := ""
	if len(channels) > 0 {
		b, _ := json.Marshal(protocol.CreateSession{Channels: channels})
		body = string(b)
	}
	r := h.post(t, "/sessions", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /sessions: %d %s", r.Status, r.Body)
	}
	created := ssetest.DecodeReply[protocol.SessionCreated](t, "POST /sessions", r)
	if !sessionIDPattern.MatchString(created.Session) {
		t.Fatalf("POST /sessions: session id %q is not 128 bits or more, URL-safe", created.Session)
	}
	if want := "/events?session=" + created.Session; created.Events != want {
		t.Fatalf("POST /sessions: events %q, want %q", created.Events, want)
	}
	if want := nonNil(channels); !sameSet(created.Channels, want) {
		t.Fatalf("POST /sessions: channels %q, want %q", created.Channels, want)
	}
	return created.Session
}

// tune posts a tuning body and returns the channels of the 200 answer.
func (h *harness) tune(t testing.TB, sid, body string) []string {
	t.Helper()
	r := h.post(t, "/sessions/"+sid+"/channels", body)
	if r.Status != http.StatusOK {
		t.Fatalf("tune %s: %d %s", body, r.Status, r.Body)
	}
	return ssetest.DecodeReply[protocol.Tuned](t, "tune", r).Channels
}

// chat posts a message and returns its id from the 202 answer.
func (h *harness) chat(t testing.TB, sid, name, text string) int64 {
	t.Helper()
	b, _ := json.Marshal(protocol.ChatPost{Name: name, Text: text})
	r := h.post(t, "/sessions/"+sid+"/chat", string(b))
	if r.Status != http.StatusAccepted {
		t.Fatalf("chat: %d %s", r.Status, r.Body)
	}
	return ssetest.DecodeReply[protocol.ChatAccepted](t, "chat", r).ID
}

// bulk starts a transfer and checks the 202 answer's shape.
func (h *harness) bulk(t testing.TB, sid, body string) protocol.BulkAccepted {
	t.Helper()
	r := h.post(t, "/sessions/"+sid+"/bulk", body)
	if r.Status != http.StatusAccepted {
		t.Fatalf("bulk %s: %d %s", body, r.Status, r.Body)
	}
	acc := ssetest.DecodeReply[protocol.BulkAccepted](t, "bulk", r)
	if acc.Transfer == "" || len(acc.SHA256) != 64 {
		t.Fatalf("bulk %s: answer %+v", body, acc)
	}
	if want := protocol.Chunks(acc.Bytes); acc.Chunks != want {
		t.Fatalf("bulk %s: %d chunks for %d bytes, want %d", body, acc.Chunks, acc.Bytes, want)
	}
	return acc
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// open starts a stream and fails the test unless the answer is a 200
// text/event-stream.
func (h *harness) open(t testing.TB, path string, hdr http.Header) *ssetest.Stream {
	t.Helper()
	return ssetest.Open(t, h.hc, h.srv.URL+path, hdr)
}

// events opens the stream of session sid.
func (h *harness) events(t testing.TB, sid string) *ssetest.Stream {
	t.Helper()
	return h.open(t, "/events?session="+sid, nil)
}

// tryOpen starts a stream, or returns the whole answer if it is not a 200.
// The stream is closed when the test ends.
func (h *harness) tryOpen(t testing.TB, path string, hdr http.Header) (*ssetest.Stream, ssetest.Reply) {
	t.Helper()
	return ssetest.TryOpen(t, h.hc, h.srv.URL+path, hdr)
}

// untilChat reads s until the live chat with the given id.
func untilChat(t testing.TB, s *ssetest.Stream, id int64) (protocol.Message, []protocol.Message) {
	t.Helper()
	return s.Until(t, fmt.Sprintf("chat %d", id), func(m protocol.Message) bool {
		if m.Name != protocol.EventChat {
			return false
		}
		var c protocol.Chat
		return json.Unmarshal([]byte(m.Data), &c) == nil && c.ID == id
	})
}

// A bulkCheck reassembles one transfer from its events, checking each one
// against the 202 answer, possibly across several streams (a resume).
type bulkCheck struct {
	acc  protocol.BulkAccepted
	next int // next seq expected
	sum  hash.Hash
	n    int64
	keep bool
	data []byte
	done bool
}

func newBulkCheck(acc protocol.BulkAccepted, keep bool) *bulkCheck {
	return &bulkCheck{acc: acc, sum: sha256.New(), keep: keep}
}

// feed takes one event; it reports whether the event belonged to the
// transfer.
func (b *bulkCheck) feed(t testing.TB, m protocol.Message) bool {
	t.Helper()
	switch m.Name {
	case protocol.EventBulk:
		// The first and last chunks go through encoding/json; those between
		// through a cheaper path (ssetest.ParseChunk), which a 20 MiB transfer
		// under -race needs.
		var c protocol.BulkChunk
		if b.next == 0 || b.next >= b.acc.Chunks-1 {
			c = ssetest.Decode[protocol.BulkChunk](t, m)
		} else {
			var err error
			if c, err = ssetest.ParseChunk(m.Data); err != nil {
				t.Fatal(err)
			}
		}
		if c.Transfer != b.acc.Transfer {
			return false
		}
		switch {
		case b.done:
			t.Fatalf("transfer %s: chunk %d after bulk-end", c.Transfer, c.Seq)
		case c.Seq != b.next:
			t.Fatalf("transfer %s: chunk seq %d, want %d", c.Transfer, c.Seq, b.next)
		case c.Chunks != b.acc.Chunks:
			t.Fatalf("transfer %s: chunk says %d chunks, the 202 said %d", c.Transfer, c.Chunks, b.acc.Chunks)
		case len(c.Data) > protocol.BulkChunkSize:
			t.Fatalf("transfer %s: chunk %d has %d bytes, more than %d", c.Transfer, c.Seq, len(c.Data), protocol.BulkChunkSize)
		case c.Seq < c.Chunks-1 && len(c.Data) != protocol.BulkChunkSize:
			t.Fatalf("transfer %s: chunk %d of %d has %d bytes, want a full %d", c.Transfer, c.Seq, c.Chunks, len(c.Data), protocol.BulkChunkSize)
		case len(c.Data) == 0:
			t.Fatalf("transfer %s: empty chunk %d", c.Transfer, c.Seq)
		}
		b.next++
		b.n += int64(len(c.Data))
		b.sum.Write(c.Data)
		if b.keep {
			b.data = append(b.data, c.Data...)
		}
		return true
	case protocol.EventBulkEnd:
		e := ssetest.Decode[protocol.BulkEnd](t, m)
		if e.Transfer != b.acc.Transfer {
			return false
		}
		got := hex.EncodeToString(b.sum.Sum(nil))
		switch {
		case b.done:
			t.Fatalf("transfer %s: bulk-end twice", e.Transfer)
		case b.next != b.acc.Chunks:
			t.Fatalf("transfer %s: bulk-end after %d chunks, want %d", e.Transfer, b.next, b.acc.Chunks)
		case e.Bytes != b.acc.Bytes || b.n != b.acc.Bytes:
			t.Fatalf("transfer %s: bulk-end says %d bytes, received %d, the 202 said %d", e.Transfer, e.Bytes, b.n, b.acc.Bytes)
		case e.SHA256 != b.acc.SHA256:
			t.Fatalf("transfer %s: bulk-end sha256 %s, the 202 said %s", e.Transfer, e.SHA256, b.acc.SHA256)
		case got != b.acc.SHA256:
			t.Fatalf("transfer %s: received bytes hash to %s, announced %s", e.Transfer, got, b.acc.SHA256)
		}
		b.done = true
		return true
	}
	return false
}

// readFrom reads s until the transfer's bulk-end and returns the events that
// were not part of it, in order.
func (b *bulkCheck) readFrom(t testing.TB, s *ssetest.Stream) []protocol.Message {
	t.Helper()
	var others []protocol.Message
	for !b.done {
		if m := s.Next(t); !b.feed(t, m) {
			others = append(others, m)
		}
	}
	return others
}

// unchanged checks that the bad requests since before changed nothing: no
// session, stream, chat, transfer or resume more, session sid still tuned to
// [one] (setting it again announces nothing), and its open stream, victim,
// got only ticks of one, with consecutive ids, up to a chat sent now.
// wantTicks also asks for at least one such tick.
func (h *harness) unchanged(t *testing.T, before broadcast.Snapshot, sid string, victim *ssetest.Stream, wantTicks bool) {
	t.Helper()
	after := h.srv.Hub.Snapshot()
	for _, c := range []struct {
		what          string
		before, after int64
	}{
		{"sessions", int64(before.Sessions), int64(after.Sessions)},
		{"sessions opened", before.SessionsOpened, after.SessionsOpened},
		{"streams", int64(before.Streams), int64(after.Streams)},
		{"chats", before.Chats, after.Chats},
		{"bulk transfers", before.BulkStarted, after.BulkStarted},
		{"resumes", before.Resumes, after.Resumes},
	} {
		if c.before != c.after {
			t.Errorf("bad requests changed %s from %d to %d", c.what, c.before, c.after)
		}
	}
	if got := h.tune(t, sid, `{"channels":["one"]}`); !slices.Equal(got, []string{"one"}) {
		t.Fatalf("the set became %q", got)
	}
	id := h.chat(t, sid, "ann", "still here")
	mark, between := untilChat(t, victim, id)
	for _, m := range between {
		if m.Name != "one" {
			t.Fatalf("the open stream got %s %.100q from a bad request", m.Name, m.Data)
		}
	}
	if wantTicks && len(between) == 0 {
		t.Fatal("the open stream got no tick while the bad requests ran")
	}
	ssetest.Consecutive(t, 1, append(between, mark))
}
