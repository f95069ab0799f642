package server_test

// Helpers for the end-to-end tests: a real server from internal/testserver,
// plain net/http requests, and streams read with protocol.Decoder. They do not
// use pkg/client on purpose, so that these tests check the wire contract of
// docs/PROTOCOL.md independently of any one client.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
	"github.com/xhrsse/xhrsse/pkg/server"
)

// wait bounds every "eventually" in these tests. It is generous on purpose:
// the suite runs under -race on a busy 2-core machine, and a test only waits
// this long when it is about to fail.
const wait = 15 * time.Second

// maxLine is the longest SSE line the tests accept: one bulk chunk is 64 KiB
// of base64 plus its JSON.
const maxLine = 1 << 20

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

// A reply is a whole non-streaming answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// request sends one request; a body is sent as is, with the headers given
// (no Content-Type unless hdr has one).
func (h *harness) request(t testing.TB, method, path string, hdr map[string]string, body string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.srv.URL+path, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// post sends a JSON body (none if body is empty).
func (h *harness) post(t testing.TB, path, body string) reply {
	t.Helper()
	hdr := map[string]string{}
	if body != "" {
		hdr["Content-Type"] = "application/json"
	}
	return h.request(t, http.MethodPost, path, hdr, body)
}

func (h *harness) get(t testing.TB, path string) reply {
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
	if r.status != http.StatusCreated {
		t.Fatalf("POST /sessions: %d %s", r.status, r.body)
	}
	created := decodeReply[protocol.SessionCreated](t, "POST /sessions", r)
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
	if r.status != http.StatusOK {
		t.Fatalf("tune %s: %d %s", body, r.status, r.body)
	}
	return decodeReply[protocol.Tuned](t, "tune", r).Channels
}

// chat posts a message and returns its id from the 202 answer.
func (h *harness) chat(t testing.TB, sid, name, text string) int64 {
	t.Helper()
	b, _ := json.Marshal(protocol.ChatPost{Name: name, Text: text})
	r := h.post(t, "/sessions/"+sid+"/chat", string(b))
	if r.status != http.StatusAccepted {
		t.Fatalf("chat: %d %s", r.status, r.body)
	}
	return decodeReply[protocol.ChatAccepted](t, "chat", r).ID
}

// bulk starts a transfer and checks the 202 answer's shape.
func (h *harness) bulk(t testing.TB, sid, body string) protocol.BulkAccepted {
	t.Helper()
	r := h.post(t, "/sessions/"+sid+"/bulk", body)
	if r.status != http.StatusAccepted {
		t.Fatalf("bulk %s: %d %s", body, r.status, r.body)
	}
	acc := decodeReply[protocol.BulkAccepted](t, "bulk", r)
	if acc.Transfer == "" || len(acc.SHA256) != 64 {
		t.Fatalf("bulk %s: answer %+v", body, acc)
	}
	if want := protocol.Chunks(acc.Bytes); acc.Chunks != want {
		t.Fatalf("bulk %s: %d chunks for %d bytes, want %d", body, acc.Chunks, acc.Bytes, want)
	}
	return acc
}

// wantError checks a non-2xx answer: its status, a JSON Content-Type and a
// body that is exactly {"error": non-empty}.
func wantError(t testing.TB, what string, r reply, status int) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d (body %s)", what, r.status, status, r.body)
		return
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	var e protocol.Error
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == "" {
		t.Errorf("%s: body %q is not {\"error\": non-empty} (%v)", what, r.body, err)
	}
}

// decodeReply checks a 2xx answer is JSON and decodes it strictly.
func decodeReply[T any](t testing.TB, what string, r reply) T {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: Content-Type %q, want application/json", what, ct)
	}
	return decodeStrict[T](t, r.body)
}

// decodeStrict decodes exactly one JSON value with no unknown fields.
func decodeStrict[T any](t testing.TB, data []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T from %.200q: %v", v, data, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("decode %T from %.200q: trailing data", v, data)
	}
	return v
}

// data decodes an event's data strictly.
func data[T any](t testing.TB, m protocol.Message) T {
	t.Helper()
	return decodeStrict[T](t, []byte(m.Data))
}

// eventID parses an event's id, which PROTOCOL.md makes a decimal integer.
func eventID(t testing.TB, m protocol.Message) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(m.ID, 10, 64)
	if err != nil {
		t.Fatalf("event %s: id %q is not a decimal integer", m.Name, m.ID)
	}
	return n
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

// An arrival is a dispatched event and when our reader decoded it.
type arrival struct {
	protocol.Message
	at time.Time
}

// A stream is one open GET /events, decoded by its own goroutine into an
// unbounded queue, so a test can wait for events with a timeout, read several
// streams in turn, and know when each event arrived.
type stream struct {
	cancel context.CancelFunc
	header http.Header
	done   chan struct{} // closed when the reader returns
	notify chan struct{} // cap 1: "the queue changed"

	mu    sync.Mutex
	head  []byte // the first bytes of the body, as received
	queue []arrival
	ended bool
	err   error // why the stream ended: io.EOF for a clean end
}

var errTimeout = errors.New("timed out")

// open starts a stream and fails the test unless the answer is a 200
// text/event-stream.
func (h *harness) open(t testing.TB, path string, hdr http.Header) *stream {
	t.Helper()
	s, r := h.tryOpen(t, path, hdr)
	if s == nil {
		t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	return s
}

// events opens the stream of session sid.
func (h *harness) events(t testing.TB, sid string) *stream {
	t.Helper()
	return h.open(t, "/events?session="+sid, nil)
}

// tryOpen starts a stream, or returns the whole answer if it is not a 200.
// The stream is closed when the test ends.
func (h *harness) tryOpen(t testing.TB, path string, hdr http.Header) (*stream, reply) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.srv.URL+path, nil)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", path, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return nil, reply{status: resp.StatusCode, header: resp.Header, body: b}
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		cancel()
		resp.Body.Close()
		t.Fatalf("GET %s: Content-Type %q", path, ct)
	}
	s := &stream{
		cancel: cancel, header: resp.Header,
		done: make(chan struct{}), notify: make(chan struct{}, 1),
	}
	go s.read(resp.Body)
	t.Cleanup(s.close)
	return s, reply{status: resp.StatusCode, header: resp.Header}
}

// read decodes the body until it ends or the stream is closed.
// Runs in its own goroutine.
func (s *stream) read(body io.ReadCloser) {
	defer close(s.done)
	defer body.Close()
	dec := protocol.NewDecoder(headRecorder{body, s}, maxLine)
	for {
		m, err := dec.Next()
		now := time.Now()
		s.mu.Lock()
		if err != nil {
			s.ended, s.err = true, err
		} else {
			s.queue = append(s.queue, arrival{m, now})
		}
		s.mu.Unlock()
		select {
		case s.notify <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// headRecorder keeps the first bytes of a stream for the tests of its
// preamble.
type headRecorder struct {
	r io.Reader
	s *stream
}

func (h headRecorder) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.s.mu.Lock()
	if k := min(n, 256-len(h.s.head)); k > 0 {
		h.s.head = append(h.s.head, p[:k]...)
	}
	h.s.mu.Unlock()
	return n, err
}

// close drops the connection (the server sees a client that went away) and
// waits for the reader. It is safe to call more than once.
func (s *stream) close() {
	s.cancel()
	<-s.done
}

// recv returns the next event, or an error if none came within timeout or
// the stream ended (wrapping io.EOF for a clean end).
func (s *stream) recv(timeout time.Duration) (arrival, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			a := s.queue[0]
			s.queue[0] = arrival{}
			s.queue = s.queue[1:]
			s.mu.Unlock()
			return a, nil
		}
		if s.ended {
			err := s.err
			s.mu.Unlock()
			return arrival{}, fmt.Errorf("stream ended: %w", err)
		}
		s.mu.Unlock()
		select {
		case <-s.notify:
		case <-timer.C:
			return arrival{}, errTimeout
		}
	}
}

// next returns the next event or fails the test.
func (s *stream) next(t testing.TB) protocol.Message {
	t.Helper()
	a, err := s.recv(wait)
	if err != nil {
		t.Fatalf("waiting for an event: %v", err)
	}
	return a.Message
}

// expect returns the next event, failing the test unless it is named name.
func (s *stream) expect(t testing.TB, name string) protocol.Message {
	t.Helper()
	m := s.next(t)
	if m.Name != name {
		t.Fatalf("got event %s (id %s, data %.200q), want %s", m.Name, m.ID, m.Data, name)
	}
	return m
}

// until reads events until one satisfies pred; it returns that event and
// the ones before it.
func (s *stream) until(t testing.TB, what string, pred func(protocol.Message) bool) (protocol.Message, []protocol.Message) {
	t.Helper()
	deadline := time.Now().Add(wait)
	var before []protocol.Message
	for {
		a, err := s.recv(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for %s (after %d other events): %v", what, len(before), err)
		}
		if pred(a.Message) {
			return a.Message, before
		}
		before = append(before, a.Message)
	}
}

// untilChat reads until the live chat with the given id.
func (s *stream) untilChat(t testing.TB, id int64) (protocol.Message, []protocol.Message) {
	t.Helper()
	return s.until(t, fmt.Sprintf("chat %d", id), func(m protocol.Message) bool {
		if m.Name != protocol.EventChat {
			return false
		}
		var c protocol.Chat
		return json.Unmarshal([]byte(m.Data), &c) == nil && c.ID == id
	})
}

// end reads until the server ends the stream cleanly and returns what came
// before the end.
func (s *stream) end(t testing.TB) []protocol.Message {
	t.Helper()
	deadline := time.Now().Add(wait)
	var rest []protocol.Message
	for {
		a, err := s.recv(time.Until(deadline))
		switch {
		case err == nil:
			rest = append(rest, a.Message)
			continue
		case errors.Is(err, io.EOF):
			return rest
		}
		t.Fatalf("waiting for the stream to end (after %d events): %v", len(rest), err)
	}
}

// expectBye reads up to the bye event, which must have the reason given and
// be the last event of the stream; it returns the bye and the events before.
func (s *stream) expectBye(t testing.TB, reason string) (protocol.Message, []protocol.Message) {
	t.Helper()
	bye, before := s.until(t, "bye", func(m protocol.Message) bool { return m.Name == protocol.EventBye })
	if got := data[protocol.Bye](t, bye); got.Reason != reason {
		t.Fatalf("bye reason %q, want %q", got.Reason, reason)
	}
	if rest := s.end(t); len(rest) > 0 {
		t.Fatalf("%d events after bye, first %s", len(rest), rest[0].Name)
	}
	return bye, before
}

// headBytes returns the first bytes the stream received.
func (s *stream) headBytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.head)
}

// consecutive fails the test unless the events' ids run from first on
// without a hole or a repeat.
func consecutive(t testing.TB, first uint64, ms []protocol.Message) {
	t.Helper()
	for i, m := range ms {
		if id := eventID(t, m); id != first+uint64(i) {
			t.Fatalf("event %d (%s): id %d, want %d (ids must be consecutive)", i, m.Name, id, first+uint64(i))
		}
	}
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
		// through a cheaper path (see quickChunk), which a 20 MiB transfer
		// under -race needs.
		var c protocol.BulkChunk
		if b.next == 0 || b.next >= b.acc.Chunks-1 {
			c = data[protocol.BulkChunk](t, m)
		} else {
			c = quickChunk(t, m)
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
		e := data[protocol.BulkEnd](t, m)
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
func (b *bulkCheck) readFrom(t testing.TB, s *stream) []protocol.Message {
	t.Helper()
	var others []protocol.Message
	for !b.done {
		if m := s.next(t); !b.feed(t, m) {
			others = append(others, m)
		}
	}
	return others
}

// quickChunk decodes a bulk event's data as encoding/json would, but scans
// the long base64 string once, with the base64 decoder, instead of through
// the JSON scanner too: under -race that scanner costs a function call per
// byte. It needs the data field last and unescaped, as the server writes it;
// anything else goes to encoding/json.
func quickChunk(t testing.TB, m protocol.Message) protocol.BulkChunk {
	t.Helper()
	const key = `,"data":"`
	i := strings.Index(m.Data, key)
	if i < 0 || !strings.HasSuffix(m.Data, `"}`) {
		return data[protocol.BulkChunk](t, m)
	}
	payload := m.Data[i+len(key) : len(m.Data)-2]
	head := decodeStrict[struct {
		Transfer string `json:"transfer"`
		Seq      int    `json:"seq"`
		Chunks   int    `json:"chunks"`
	}](t, []byte(m.Data[:i]+"}"))
	raw, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		t.Fatalf("bulk chunk %d: data is not standard padded base64: %v", head.Seq, err)
	}
	return protocol.BulkChunk{Transfer: head.Transfer, Seq: head.Seq, Chunks: head.Chunks, Data: raw}
}

// eventually polls cond until it holds, failing the test after wait.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// unchanged checks that the bad requests since before changed nothing: no
// session, stream, chat, transfer or resume more, session sid still tuned to
// [one] (setting it again announces nothing), and its open stream, victim,
// got only ticks of one, with consecutive ids, up to a chat sent now.
// wantTicks also asks for at least one such tick.
func (h *harness) unchanged(t *testing.T, before broadcast.Snapshot, sid string, victim *stream, wantTicks bool) {
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
	mark, between := victim.untilChat(t, id)
	for _, m := range between {
		if m.Name != "one" {
			t.Fatalf("the open stream got %s %.100q from a bad request", m.Name, m.Data)
		}
	}
	if wantTicks && len(between) == 0 {
		t.Fatal("the open stream got no tick while the bad requests ran")
	}
	consecutive(t, 1, append(between, mark))
}
