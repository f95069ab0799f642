package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
	"github.com/xhrsse/xhrsse/pkg/server"
)

const pubToken = "tok-3f9a-publish"

// logChannel is the published channel of these tests.
var logChannel = broadcast.ChannelConfig{Name: "log", Title: "Log", Published: true}

// startPublish runs a server with the default channels at tickRate and the
// published channel "log", publishing with pubToken.
func startPublish(t *testing.T, cfg server.Config, tickRate float64, opts ...broadcast.Option) *harness {
	t.Helper()
	if cfg.PublishTokens == nil {
		cfg.PublishTokens = []string{"another-token", pubToken}
	}
	chans := append(fastChannels(tickRate), logChannel)
	return startConfig(t, cfg, append([]broadcast.Option{broadcast.WithChannels(chans...)}, opts...)...)
}

func authJSON() map[string]string {
	return map[string]string{"Authorization": "Bearer " + pubToken, "Content-Type": "application/json"}
}

// publishJSON publishes one event and checks the 202 {"events":1}.
func (h *harness) publishJSON(t testing.TB, channel, text string) {
	t.Helper()
	b, _ := json.Marshal(protocol.PublishPost{Data: text})
	r := h.request(t, http.MethodPost, "/channels/"+channel+"/events", authJSON(), string(b))
	if r.Status != http.StatusAccepted {
		t.Fatalf("publish %q: %d %s", text, r.Status, r.Body)
	}
	if got := ssetest.DecodeReply[protocol.PublishAnswer](t, "publish", r); got.Events != 1 {
		t.Fatalf("publish %q: answer %+v, want 1 event", text, got)
	}
}

// A textPublish is a text body being sent: lines go out as the test writes
// them, and the answer comes when the test closes the body.
type textPublish struct {
	pw     *io.PipeWriter
	answer chan ssetest.Reply
}

func (h *harness) startText(t testing.TB, method, channel string, hdr map[string]string) *textPublish {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), ssetest.Wait)
	req, err := http.NewRequestWithContext(ctx, method, h.srv.URL+"/channels/"+channel+"/events", pr)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+pubToken)
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	p := &textPublish{pw: pw, answer: make(chan ssetest.Reply, 1)}
	go func() {
		defer cancel()
		resp, err := h.hc.Do(req)
		if err != nil {
			pr.CloseWithError(err)
			p.answer <- ssetest.Reply{Status: -1, Body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		p.answer <- ssetest.Reply{Status: resp.StatusCode, Header: resp.Header, Body: b}
	}()
	t.Cleanup(func() { pw.Close() })
	return p
}

func (p *textPublish) write(t testing.TB, s string) {
	t.Helper()
	if _, err := io.WriteString(p.pw, s); err != nil {
		t.Fatalf("write to the text body: %v", err)
	}
}

// finish ends the body and returns the answer.
func (p *textPublish) finish(t testing.TB) ssetest.Reply {
	t.Helper()
	p.pw.Close()
	return <-p.answer
}

func untilLog(t testing.TB, s *ssetest.Stream, text string) (protocol.Message, []protocol.Message) {
	t.Helper()
	return s.Until(t, "log "+strconv.Quote(text), func(m protocol.Message) bool { return m.Name == "log" && m.Data == text })
}

func TestPublishDeclareTunePublish(t *testing.T) {
	h := startPublish(t, server.Config{}, 0.5)

	chans := ssetest.DecodeReply[[]protocol.Channel](t, "GET /channels", h.get(t, "/channels"))
	kinds := map[string]string{}
	for _, c := range chans {
		kinds[c.Name] = c.Kind
		if c.Published() && (c.Rate != 0 || c.Repertoire != "" || c.Width != 0) {
			t.Errorf("published channel %s has rate %v, repertoire %q, width %d", c.Name, c.Rate, c.Repertoire, c.Width)
		}
	}
	want := map[string]string{"one": "ticker", "two": "ticker", "three": "ticker", "log": "published"}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("GET /channels kinds %v, want %v", kinds, want)
	}

	sid := h.newSession(t, "log")
	s := h.events(t, sid)
	s.Expect(t, protocol.EventSession)

	// JSON: one event, line ends and all; the SSE parser joins the data
	// lines back with LF.
	for _, tc := range []struct{ sent, got string }{
		{"hello", "hello"},
		{"two\nlines", "two\nlines"},
		{"crlf\r\nand cr\rend", "crlf\nand cr\nend"},
		{"trailing newline\n", "trailing newline\n"},
		{"\n", "\n"},
		{"<b>markup</b> \x1b[31mred\x1b[0m \u202eRTL", "<b>markup</b> \x1b[31mred\x1b[0m \u202eRTL"},
		{"漢字 and emoji 🎉", "漢字 and emoji 🎉"},
	} {
		h.publishJSON(t, "log", tc.sent)
		m := s.Expect(t, "log")
		if m.Data != tc.got {
			t.Errorf("published %q, the stream got %q, want %q", tc.sent, m.Data, tc.got)
		}
	}

	// A streaming text body: line 1 is on the stream before line 2 is
	// written. PUT, as curl -T sends it.
	p := h.startText(t, http.MethodPut, "log", nil)
	p.write(t, "line 1\n")
	if m := s.Expect(t, "log"); m.Data != "line 1" {
		t.Fatalf("first line: got %q", m.Data)
	}
	p.write(t, "line 2\r\n\n\nline")
	p.write(t, " 3 without an end")
	r := p.finish(t)
	if r.Status != http.StatusOK {
		t.Fatalf("text publish: %d %s", r.Status, r.Body)
	}
	if got := ssetest.DecodeReply[protocol.PublishAnswer](t, "text publish", r); got.Events != 3 {
		t.Fatalf("text publish: answer %+v, want 3 events (empty lines skipped)", got)
	}
	for _, want := range []string{"line 2", "line 3 without an end"} {
		if m := s.Expect(t, "log"); m.Data != want {
			t.Fatalf("got %q, want %q", m.Data, want)
		}
	}

	// A session not tuned to log gets none of it; tuned out, nothing more.
	other := h.newSession(t, "one")
	os := h.events(t, other)
	os.Expect(t, protocol.EventSession)
	h.tune(t, sid, `{"channel":"log","on":false}`)
	s.Expect(t, protocol.EventTuned)
	h.publishJSON(t, "log", "after tune-out")
	id := h.chat(t, sid, "ann", "mark")
	for _, st := range []*ssetest.Stream{s, os} {
		_, before := untilChat(t, st, id)
		for _, m := range before {
			if m.Name == "log" {
				t.Fatalf("a session not tuned to log got %q", m.Data)
			}
		}
	}

	snap := h.srv.Hub.Snapshot()
	if snap.Published["log"] != 11 {
		t.Errorf("snapshot: %d events published to log, want 11", snap.Published["log"])
	}
	metrics := string(h.get(t, "/metrics").Body)
	for _, line := range []string{
		`xhrsse_published_events_total{channel="log"} 11`,
		`xhrsse_publish_requests_total{status="202"} 8`,
		`xhrsse_publish_requests_total{status="200"} 1`,
	} {
		if !strings.Contains(metrics, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

// Published events are part of the session's history: a resume replays them.
func TestPublishResume(t *testing.T) {
	h := startPublish(t, server.Config{}, 0.5)
	sid := h.newSession(t, "log")
	s := h.events(t, sid)
	s.Expect(t, protocol.EventSession)
	h.publishJSON(t, "log", "first")
	first := s.Expect(t, "log")
	s.Close()
	h.publishJSON(t, "log", "second\nof two lines")
	h.publishJSON(t, "log", "third")

	r := h.open(t, "/events?session="+sid, http.Header{"Last-Event-ID": {first.ID}})
	if got := ssetest.Decode[protocol.SessionEvent](t, r.Expect(t, protocol.EventSession)); !got.Resumed {
		t.Fatal("session event: resumed false")
	}
	second, third := r.Expect(t, "log"), r.Expect(t, "log")
	if second.Data != "second\nof two lines" || third.Data != "third" {
		t.Fatalf("replayed %q, %q", second.Data, third.Data)
	}
	ssetest.Consecutive(t, ssetest.ID(t, first)+1, []protocol.Message{second, third})
}

// wantPublishError checks a refused publish: status, JSON body
// {"error":…,"events":N} and nothing else.
func wantPublishError(t testing.TB, what string, r ssetest.Reply, status, events int) {
	t.Helper()
	if e, ok := ssetest.Refusal[protocol.PublishError](t, what, r, status); ok && (e.Error == "" || e.Events != events) {
		t.Errorf("%s: body %s, want an error and events %d", what, r.Body, events)
	}
}

func TestPublishErrors(t *testing.T) {
	var logs ssetest.Buffer
	cfg := server.Config{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), PublishRate: 1}
	h := startPublish(t, cfg, 20)
	victim := h.newSession(t, "one")
	vs := h.events(t, victim)
	vs.Expect(t, protocol.EventSession)
	listener := h.newSession(t, "log")
	ls := h.events(t, listener)
	ls.Expect(t, protocol.EventSession)
	before := h.srv.Hub.Snapshot()

	pub := func(hdr map[string]string, path, body string) ssetest.Reply {
		return h.request(t, http.MethodPost, path, hdr, body)
	}
	jsonOnly := map[string]string{"Content-Type": "application/json"}
	withAuth := func(auth, ct string) map[string]string {
		return map[string]string{"Authorization": auth, "Content-Type": ct}
	}
	ok := `{"data":"x"}`

	r := pub(jsonOnly, "/channels/log/events", ok)
	wantPublishError(t, "no token", r, http.StatusUnauthorized, 0)
	if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("no token: WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
	}
	for _, auth := range []string{"Bearer wrong", "Bearer " + pubToken + "x", "Basic " + pubToken, pubToken, "Bearer"} {
		r := pub(withAuth(auth, "application/json"), "/channels/log/events", ok)
		wantPublishError(t, "Authorization "+auth, r, http.StatusUnauthorized, 0)
		if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", auth, r.Header.Get("WWW-Authenticate"))
		}
	}
	wantPublishError(t, "unknown channel", pub(authJSON(), "/channels/nope/events", ok), http.StatusNotFound, 0)
	wantPublishError(t, "ticker channel", pub(authJSON(), "/channels/one/events", ok), http.StatusConflict, 0)
	wantPublishError(t, "no content type", pub(withAuth("Bearer "+pubToken, ""), "/channels/log/events", ok), http.StatusUnsupportedMediaType, 0)
	wantPublishError(t, "form", pub(withAuth("Bearer "+pubToken, "application/x-www-form-urlencoded"), "/channels/log/events", "data=x"), http.StatusUnsupportedMediaType, 0)
	for name, body := range map[string]string{
		"bad JSON":       `{"data":`,
		"unknown field":  `{"data":"x","name":"y"}`,
		"empty data":     `{"data":""}`,
		"no data":        `{}`,
		"invalid UTF-8":  "{\"data\":\"\xff\"}",
		"lone surrogate": `{"data":"\ud800"}`,
		"NUL":            `{"data":"a\u0000b"}`,
		"two objects":    `{"data":"x"}{"data":"y"}`,
	} {
		wantPublishError(t, name, pub(authJSON(), "/channels/log/events", body), http.StatusBadRequest, 0)
	}
	big, _ := json.Marshal(protocol.PublishPost{Data: strings.Repeat("a", protocol.MaxPublishData+1)})
	wantPublishError(t, "data over 64 KiB", pub(authJSON(), "/channels/log/events", string(big)), http.StatusRequestEntityTooLarge, 0)
	huge := `{"data":"` + strings.Repeat(`\u0061`, protocol.MaxPublishBody/6+1) + `"}`
	wantPublishError(t, "body over the limit", pub(authJSON(), "/channels/log/events", huge), http.StatusRequestEntityTooLarge, 0)
	r = h.request(t, http.MethodGet, "/channels/log/events", nil, "")
	ssetest.WantError(t, "GET", r, http.StatusMethodNotAllowed)
	if !strings.Contains(r.Header.Get("Allow"), "POST") {
		t.Errorf("405: Allow %q", r.Header.Get("Allow"))
	}

	// Publishing needs no origin: a foreign one with the token publishes.
	// The rate (1 a second, bursts of 1) is then spent: the next JSON
	// publish is refused with Retry-After.
	hdr := authJSON()
	hdr["Origin"] = "https://elsewhere.example"
	hdr["Sec-Fetch-Site"] = "cross-site"
	if r := pub(hdr, "/channels/log/events", `{"data":"from afar"}`); r.Status != http.StatusAccepted {
		t.Fatalf("publish with a foreign Origin: %d %s", r.Status, r.Body)
	}
	r = pub(authJSON(), "/channels/log/events", `{"data":"too soon"}`)
	wantPublishError(t, "over the rate", r, http.StatusTooManyRequests, 0)
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("429: Retry-After %q", r.Header.Get("Retry-After"))
	}
	if m := ls.Expect(t, "log"); m.Data != "from afar" {
		t.Fatalf("listener got %q", m.Data)
	}

	// Text bodies: the lines before a bad one stay published, and the
	// answer counts them. The rate slows these down rather than refusing.
	for _, tc := range []struct {
		name   string
		body   string
		status int
		good   []string
	}{
		{"invalid UTF-8 line", "good 1\ngood 2\nbad \xff\nnever\n", http.StatusBadRequest, []string{"good 1", "good 2"}},
		{"NUL line", "fine\nnul \x00\n", http.StatusBadRequest, []string{"fine"}},
		{"line over 64 KiB", "short\n" + strings.Repeat("b", protocol.MaxPublishData+1) + "\nnever\n", http.StatusRequestEntityTooLarge, []string{"short"}},
		{"line over the buffer", strings.Repeat("c", 3*protocol.MaxPublishData), http.StatusRequestEntityTooLarge, nil},
	} {
		p := h.startText(t, http.MethodPost, "log", nil)
		go func() { io.WriteString(p.pw, tc.body); p.pw.Close() }()
		r := <-p.answer
		wantPublishError(t, tc.name, r, tc.status, len(tc.good))
		for _, want := range tc.good {
			if m := ls.Expect(t, "log"); m.Data != want {
				t.Fatalf("%s: listener got %q, want %q", tc.name, m.Data, want)
			}
		}
	}
	// A line of exactly 64 KiB is fine.
	p := h.startText(t, http.MethodPost, "log", nil)
	p.write(t, strings.Repeat("d", protocol.MaxPublishData)+"\r\n")
	if r := p.finish(t); r.Status != http.StatusOK {
		t.Fatalf("64 KiB line: %d %s", r.Status, r.Body)
	}
	if m := ls.Expect(t, "log"); len(m.Data) != protocol.MaxPublishData {
		t.Fatalf("64 KiB line arrived with %d bytes", len(m.Data))
	}

	h.unchanged(t, before, victim, vs, true)
	if strings.Contains(logs.String(), pubToken) {
		t.Fatal("the server logged the publish token")
	}
	metrics := string(h.get(t, "/metrics").Body)
	for _, code := range []int{400, 401, 404, 409, 413, 415, 429} {
		if !strings.Contains(metrics, fmt.Sprintf(`xhrsse_publish_requests_total{status="%d"}`, code)) {
			t.Errorf("/metrics counts no publish answered %d", code)
		}
	}
}

func TestPublishOff(t *testing.T) {
	h := startPublish(t, server.Config{PublishTokens: []string{}}, 0.5)
	wantPublishError(t, "publishing off", h.request(t, http.MethodPost, "/channels/log/events", authJSON(), `{"data":"x"}`), http.StatusForbidden, 0)
	wantPublishError(t, "publishing off, no token", h.request(t, http.MethodPost, "/channels/log/events", nil, `{"data":"x"}`), http.StatusForbidden, 0)
}

// A text body faster than the rate is read more slowly: every line is
// published, none refused.
func TestPublishTextRate(t *testing.T) {
	h := startPublish(t, server.Config{PublishRate: 50}, 0.5)
	sid := h.newSession(t, "log")
	s := h.events(t, sid)
	s.Expect(t, protocol.EventSession)
	var body strings.Builder
	const n = 120 // 50 at once, the rest at 50 a second
	for i := range n {
		fmt.Fprintf(&body, "line %d\n", i)
	}
	r := h.request(t, http.MethodPost, "/channels/log/events",
		map[string]string{"Authorization": "Bearer " + pubToken, "Content-Type": "text/plain"}, body.String())
	if r.Status != http.StatusOK {
		t.Fatalf("text publish: %d %s", r.Status, r.Body)
	}
	if got := ssetest.DecodeReply[protocol.PublishAnswer](t, "text publish", r); got.Events != n {
		t.Fatalf("answer %+v, want %d events", got, n)
	}
	for i := range n {
		if m := s.Expect(t, "log"); m.Data != fmt.Sprintf("line %d", i) {
			t.Fatalf("event %d: %q", i, m.Data)
		}
	}
}

// A storm of published events delays nobody else: while a text body of
// thousands of lines is still open, a session tuned to one gets its ticks
// and a chat sent in the middle of it; and a session tuned to both gets
// every published line, in order, with ticks among them rather than after.
func TestPublishStormDelaysNobody(t *testing.T) {
	h := startPublish(t, server.Config{PublishRate: 1e6}, 20)
	victim := h.newSession(t, "one")
	vs := h.events(t, victim)
	vs.Expect(t, protocol.EventSession)
	both := h.newSession(t, "one", "log")
	bs := h.events(t, both)
	bs.Expect(t, protocol.EventSession)

	p := h.startText(t, http.MethodPost, "log", nil)
	const half = 3000
	line := strings.Repeat("x", 200)
	var buf strings.Builder
	for i := range half {
		fmt.Fprintf(&buf, "%d %s\n", i, line)
	}
	p.write(t, buf.String())
	first, _ := bs.Until(t, "the first line", func(m protocol.Message) bool { return m.Name == "log" })
	if n, _, _ := strings.Cut(first.Data, " "); n != "0" {
		t.Fatalf("first line %q", first.Data)
	}
	// The storm is on (its body is still open): a chat and ticks reach
	// the victim now; the session tuned to both gets the same ticks, after
	// line 0 and before the second half is even written.
	id := h.chat(t, victim, "ann", "during the storm")
	_, before := untilChat(t, vs, id)
	ticks := 0
	for _, m := range before {
		switch m.Name {
		case "one":
			ticks++
		default:
			t.Fatalf("the victim got %s", m.Name)
		}
	}
	_, _ = vs.Until(t, "a tick after the chat", func(m protocol.Message) bool { return m.Name == "one" })

	buf.Reset()
	for i := half; i < 2*half; i++ {
		fmt.Fprintf(&buf, "%d %s\n", i, line)
	}
	p.write(t, buf.String())
	r := p.finish(t)
	if r.Status != http.StatusOK {
		t.Fatalf("storm: %d %s", r.Status, r.Body)
	}
	if got := ssetest.DecodeReply[protocol.PublishAnswer](t, "storm", r); got.Events != 2*half {
		t.Fatalf("storm: %+v, want %d events", got, 2*half)
	}

	// The session tuned to both: every line in order, no gap, ticks
	// interleaved (some tick arrives before the last line).
	next, tickBeforeLast, gaps := 1, false, 0
	for next < 2*half {
		m := bs.Next(t)
		switch m.Name {
		case "log":
			n, _, _ := strings.Cut(m.Data, " ")
			if n != strconv.Itoa(next) {
				t.Fatalf("line %s arrived where %d was due", n, next)
			}
			next++
		case "one":
			tickBeforeLast = true
		case protocol.EventGap:
			gaps++
		}
	}
	if gaps > 0 {
		t.Fatalf("%d gaps: the storm outran the session's buffer", gaps)
	}
	if !tickBeforeLast {
		t.Error("no tick arrived among the published lines")
	}
	if snap := h.srv.Hub.Snapshot(); snap.Published["log"] != 2*half {
		t.Fatalf("published %d, want %d", snap.Published["log"], 2*half)
	}
}

// The request timeout bounds JSON publishes, not a text body that stays
// open: one that sends a line now and then, with silences longer than the
// timeout, is read to its end.
func TestPublishTextOutlivesTimeouts(t *testing.T) {
	const timeout = 200 * time.Millisecond
	h := startPublish(t, server.Config{RequestTimeout: timeout}, 0.5)
	sid := h.newSession(t, "log")
	s := h.events(t, sid)
	s.Expect(t, protocol.EventSession)
	p := h.startText(t, http.MethodPost, "log", nil)
	const n = 6
	for i := range n {
		p.write(t, fmt.Sprintf("line %d\n", i))
		if m := s.Expect(t, "log"); m.Data != fmt.Sprintf("line %d", i) {
			t.Fatalf("got %q", m.Data)
		}
		time.Sleep(timeout + 50*time.Millisecond) // longer than the timeout, each time
	}
	r := p.finish(t)
	if r.Status != http.StatusOK {
		t.Fatalf("long text publish: %d %s", r.Status, r.Body)
	}
	if got := ssetest.DecodeReply[protocol.PublishAnswer](t, "long text publish", r); got.Events != n {
		t.Fatalf("answer %+v, want %d events", got, n)
	}
	// A JSON body that stalls is cut by the timeout, as any POST (its
	// answer's deadline has passed too, so the connection just closes).
	conn, err := net.DialTimeout("tcp", h.srv.Addr, ssetest.Wait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(ssetest.Wait))
	fmt.Fprintf(conn, "POST /channels/log/events HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"data\":", h.srv.Addr, pubToken)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
	case err != nil:
		t.Fatalf("stalled JSON publish: %v, want the connection closed", err)
	default:
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			t.Fatalf("stalled JSON publish: %d", resp.StatusCode)
		}
	}
}

// Shutting down ends an open text body with 503 and the count of what it
// published; those lines stay published.
func TestPublishTextAtShutdown(t *testing.T) {
	h := startPublish(t, server.Config{}, 0.5)
	sid := h.newSession(t, "log")
	s := h.events(t, sid)
	s.Expect(t, protocol.EventSession)
	p := h.startText(t, http.MethodPost, "log", nil)
	p.write(t, "before\n")
	s.Expect(t, "log")
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		h.srv.Close()
	}()
	s.ExpectBye(t, protocol.ByeShutdown)
	r := <-p.answer
	wantPublishError(t, "text publish at shutdown", r, http.StatusServiceUnavailable, 1)
	if r.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	<-closed
}
