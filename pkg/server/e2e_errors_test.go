package server_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
	"github.com/xhrsse/xhrsse/pkg/server"
)

// filesFixture makes a files dir with a small file, one over 1 MiB, a
// subdirectory, and a symlink to a file outside the dir (next to it, so
// "../outside" names a real file too).
func filesFixture(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	dir := filepath.Join(base, "files")
	for _, d := range []string{dir, filepath.Join(dir, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, size := range map[string]int{
		"files/ok.bin":        10,
		"files/big.bin":       1<<20 + 1,
		"files/sub/inner.bin": 10,
		"outside":             10,
	} {
		if err := os.WriteFile(filepath.Join(base, name), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(base, "outside"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestErrors: every refused request answers its status with a JSON error
// body, changes nothing, and leaves an open stream alone.
func TestErrors(t *testing.T) {
	h := start(t, broadcast.WithFilesDir(filesFixture(t)), broadcast.WithMaxBulk(1<<20))
	sid := h.newSession(t, "one")
	victim := h.events(t, sid)
	victim.Expect(t, protocol.EventSession)
	before := h.srv.Hub.Snapshot()

	jsonCT := map[string]string{"Content-Type": "application/json"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{"Content-Type": "application/json"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	const (
		tune = "/sessions/{sid}/channels"
		chat = "/sessions/{sid}/chat"
		bulk = "/sessions/{sid}/bulk"
	)
	chatOK := `{"name":"eve","text":"hello"}`
	cases := []struct {
		name, method, path string
		hdr                map[string]string
		body               string
		status             int
		header             map[string]string // must be present (value contained)
	}{
		// 400: bad JSON or field.
		{"malformed JSON", "POST", tune, jsonCT, `{"channel":`, 400, nil},
		{"not an object", "POST", tune, jsonCT, `["one"]`, 400, nil},
		{"trailing object", "POST", tune, jsonCT, `{"channel":"one","on":false} {}`, 400, nil},
		{"trailing garbage", "POST", tune, jsonCT, `{"channel":"one","on":false}x`, 400, nil},
		{"unknown field", "POST", tune, jsonCT, `{"channel":"one","on":false,"volume":11}`, 400, nil},
		{"wrong type", "POST", tune, jsonCT, `{"channel":"one","on":"no"}`, 400, nil},
		{"channels of wrong type", "POST", tune, jsonCT, `{"channels":"one"}`, 400, nil},
		{"channel and channels", "POST", tune, jsonCT, `{"channel":"one","on":false,"channels":[]}`, 400, nil},
		{"channel without on", "POST", tune, jsonCT, `{"channel":"one"}`, 400, nil},
		{"empty tune object", "POST", tune, jsonCT, `{}`, 400, nil},
		{"empty tune body", "POST", tune, nil, ``, 400, nil},
		{"chat without text", "POST", chat, jsonCT, `{"name":"eve"}`, 400, nil},
		{"chat text too long", "POST", chat, jsonCT, `{"text":"` + strings.Repeat("é", protocol.DefaultMaxChatText+1) + `"}`, 400, nil},
		{"chat name too long", "POST", chat, jsonCT, `{"name":"` + strings.Repeat("n", protocol.MaxChatName+1) + `","text":"x"}`, 400, nil},
		{"chat with NUL", "POST", chat, jsonCT, `{"text":"a\u0000b"}`, 400, nil},
		{"bulk bytes negative", "POST", bulk, jsonCT, `{"bytes":-1}`, 400, nil},
		{"bulk bytes and file", "POST", bulk, jsonCT, `{"bytes":1,"file":"ok.bin"}`, 400, nil},
		{"bulk neither", "POST", bulk, jsonCT, `{}`, 400, nil},
		{"bulk bytes not a number", "POST", bulk, jsonCT, `{"bytes":"10"}`, 400, nil},
		{"new session bad body", "POST", "/sessions", jsonCT, `{"channels":"one"}`, 400, nil},
		{"bad lastEventId", "GET", "/events?session={sid}&lastEventId=x", nil, "", 400, nil},
		{"bad Last-Event-ID", "GET", "/events?session={sid}", map[string]string{"Last-Event-ID": "-1"}, "", 400, nil},

		// 403: foreign origin.
		{"foreign Origin chat", "POST", chat, with("Origin", "http://evil.example"), chatOK, 403, nil},
		{"foreign Origin new session", "POST", "/sessions", with("Origin", "http://evil.example"), "", 403, nil},
		{"foreign Origin tune", "POST", tune, with("Origin", "https://127.0.0.1.evil.example"), `{"channels":[]}`, 403, nil},
		{"cross-site fetch", "POST", chat, with("Sec-Fetch-Site", "cross-site"), chatOK, 403, nil},
		{"same-site fetch", "POST", chat, with("Sec-Fetch-Site", "same-site"), chatOK, 403, nil},
		{"foreign preflight", "OPTIONS", "/sessions", map[string]string{"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}, "", 403, nil},

		// 404: unknown session, channel, file or path.
		{"unknown session tune", "POST", "/sessions/nope/channels", jsonCT, `{"channels":[]}`, 404, nil},
		{"unknown session chat", "POST", "/sessions/nope/chat", jsonCT, chatOK, 404, nil},
		{"unknown session bulk", "POST", "/sessions/nope/bulk", jsonCT, `{"bytes":1}`, 404, nil},
		{"unknown session stream", "GET", "/events?session=nope", nil, "", 404, nil},
		{"unknown channel", "POST", tune, jsonCT, `{"channel":"four","on":true}`, 404, nil},
		{"unknown channel in a set", "POST", tune, jsonCT, `{"channels":["one","four"]}`, 404, nil},
		{"unknown channel new session", "POST", "/sessions", jsonCT, `{"channels":["four"]}`, 404, nil},
		{"unknown file", "POST", bulk, jsonCT, `{"file":"nope.bin"}`, 404, nil},
		{"path traversal", "POST", bulk, jsonCT, `{"file":"../outside"}`, 404, nil},
		{"absolute path", "POST", bulk, jsonCT, `{"file":"/etc/passwd"}`, 404, nil},
		{"symlink out of the dir", "POST", bulk, jsonCT, `{"file":"link"}`, 404, nil},
		{"a directory", "POST", bulk, jsonCT, `{"file":"sub"}`, 404, nil},
		{"a file in a subdirectory", "POST", bulk, jsonCT, `{"file":"sub/inner.bin"}`, 404, nil},
		{"dot", "POST", bulk, jsonCT, `{"file":"."}`, 404, nil},
		{"unknown path", "GET", "/nope", nil, "", 404, nil},
		{"unknown path POST", "POST", "/nope", jsonCT, `{}`, 404, nil},

		// 405: wrong method, with Allow.
		{"PUT /sessions", "PUT", "/sessions", jsonCT, `{}`, 405, map[string]string{"Allow": "POST"}},
		{"GET /sessions", "GET", "/sessions", nil, "", 405, map[string]string{"Allow": "POST"}},
		{"GET chat", "GET", chat, nil, "", 405, map[string]string{"Allow": "POST"}},
		{"DELETE /events", "DELETE", "/events", nil, "", 405, map[string]string{"Allow": "GET"}},
		{"POST /channels", "POST", "/channels", jsonCT, `{}`, 405, map[string]string{"Allow": "GET"}},

		// 413: body or bulk too large.
		{"body over the limit", "POST", chat, jsonCT, `{"text":"` + strings.Repeat("a", protocol.DefaultMaxBody) + `"}`, 413, nil},
		{"bulk over the limit", "POST", bulk, jsonCT, fmt.Sprintf(`{"bytes":%d}`, 1<<20+1), 413, nil},
		{"file over the limit", "POST", bulk, jsonCT, `{"file":"big.bin"}`, 413, nil},

		// 415: not JSON.
		{"text/plain", "POST", chat, map[string]string{"Content-Type": "text/plain"}, chatOK, 415, nil},
		{"form", "POST", chat, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, "text=hi", 415, nil},
		{"no Content-Type", "POST", chat, nil, chatOK, 415, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.request(t, c.method, strings.ReplaceAll(c.path, "{sid}", sid), c.hdr, c.body)
			ssetest.WantError(t, c.name, r, c.status)
			for k, v := range c.header {
				if got := r.Header.Get(k); !strings.Contains(got, v) {
					t.Errorf("%s: %s %q, want it to contain %q", c.name, k, got, v)
				}
			}
			if ra := r.Header.Get("Retry-After"); ra != "" {
				t.Errorf("%s: Retry-After %q on a %d", c.name, ra, c.status)
			}
		})
	}

	// Nothing changed: no session, chat or transfer more, one stream still,
	// and the set is still [one] (setting it again announces nothing).
	h.unchanged(t, before, sid, victim, true)
}

// TestCORS: an allowed foreign origin may POST and gets CORS headers and a
// preflight answer; others may not.
func TestCORS(t *testing.T) {
	const good = "http://good.example"
	h := startConfig(t, server.Config{AllowOrigins: []string{good}})
	hdr := func(origin string) map[string]string {
		return map[string]string{"Origin": origin, "Content-Type": "application/json"}
	}
	wantACAO := func(what string, r ssetest.Reply, origin string) {
		t.Helper()
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != origin {
			t.Errorf("%s: Access-Control-Allow-Origin %q, want %q", what, got, origin)
		}
	}

	r := h.request(t, "POST", "/sessions", hdr(good), `{"channels":["one"]}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /sessions from %s: %d %s", good, r.Status, r.Body)
	}
	wantACAO("POST /sessions", r, good)
	sid := ssetest.DecodeReply[protocol.SessionCreated](t, "POST /sessions", r).Session

	r = h.request(t, "POST", "/sessions/"+sid+"/chat", hdr(good), `{"text":"hi"}`)
	if r.Status != http.StatusAccepted {
		t.Fatalf("chat from %s: %d %s", good, r.Status, r.Body)
	}
	wantACAO("chat", r, good)

	for _, path := range []string{"/sessions", "/sessions/" + sid + "/chat", "/sessions/" + sid + "/bulk"} {
		r = h.request(t, "OPTIONS", path, map[string]string{
			"Origin": good, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type",
		}, "")
		if r.Status != http.StatusNoContent {
			t.Fatalf("preflight %s: %d %s", path, r.Status, r.Body)
		}
		wantACAO("preflight "+path, r, good)
		if m := r.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(m, "POST") {
			t.Errorf("preflight %s: Access-Control-Allow-Methods %q", path, m)
		}
		if hs := strings.ToLower(r.Header.Get("Access-Control-Allow-Headers")); !strings.Contains(hs, "content-type") {
			t.Errorf("preflight %s: Access-Control-Allow-Headers %q", path, hs)
		}
	}

	r = h.request(t, "GET", "/channels", map[string]string{"Origin": good}, "")
	wantACAO("GET /channels", r, good)
	s, r := h.tryOpen(t, "/events?session="+sid, http.Header{"Origin": {good}})
	if s == nil {
		t.Fatalf("GET /events from %s: %d", good, r.Status)
	}
	wantACAO("GET /events", r, good)
	s.Expect(t, protocol.EventSession)

	// The page's own origin needs no CORS.
	r = h.request(t, "POST", "/sessions", hdr(h.srv.URL), "")
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /sessions from the same origin: %d %s", r.Status, r.Body)
	}
	wantACAO("same origin", r, "")

	// Others stay out, with no CORS header.
	for _, origin := range []string{"http://evil.example", "https://good.example", "http://good.example:8080"} {
		r = h.request(t, "POST", "/sessions/"+sid+"/chat", hdr(origin), `{"text":"hi"}`)
		ssetest.WantError(t, "chat from "+origin, r, http.StatusForbidden)
		wantACAO("chat from "+origin, r, "")
		r = h.request(t, "OPTIONS", "/sessions", map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST"}, "")
		ssetest.WantError(t, "preflight from "+origin, r, http.StatusForbidden)
		wantACAO("preflight from "+origin, r, "")
	}
	r = h.request(t, "POST", "/sessions/"+sid+"/chat", map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}, `{"text":"hi"}`)
	ssetest.WantError(t, "cross-site fetch without Origin", r, http.StatusForbidden)

	// Only the one allowed chat went out.
	if n := h.srv.Hub.Snapshot().Chats; n != 1 {
		t.Fatalf("%d chats, want 1", n)
	}
}

// retryAfter checks a Retry-After header: a whole number of seconds, >= 1.
func retryAfter(t *testing.T, what string, r ssetest.Reply) {
	t.Helper()
	ra := r.Header.Get("Retry-After")
	if n, err := strconv.Atoi(ra); err != nil || n < 1 {
		t.Errorf("%s: Retry-After %q, want whole seconds >= 1", what, ra)
	}
}

// TestRateLimits: chat beyond the burst, and a transfer beyond the allowance,
// answer 429 with Retry-After, per session, without disturbing the stream.
func TestRateLimits(t *testing.T) {
	h := start(t, broadcast.WithChatRate(0.2, 3), broadcast.WithMaxTransfers(1))
	sid := h.newSession(t, "one")
	s := h.events(t, sid)
	s.Expect(t, protocol.EventSession)

	var ids []int64
	for i := range 3 {
		ids = append(ids, h.chat(t, sid, "ann", fmt.Sprint(i)))
	}
	r := h.post(t, "/sessions/"+sid+"/chat", `{"text":"one too many"}`)
	ssetest.WantError(t, "chat over the burst", r, http.StatusTooManyRequests)
	retryAfter(t, "chat over the burst", r)
	// The allowance is per session.
	other := h.newSession(t)
	ids = append(ids, h.chat(t, other, "bob", "mine"))
	for i, id := range ids {
		m, _ := untilChat(t, s, id)
		if c := ssetest.Decode[protocol.Chat](t, m); c.Text == "one too many" || (i < 3 && c.Text != fmt.Sprint(i)) {
			t.Fatalf("chat %d: %q", id, c.Text)
		}
	}
	if n := h.srv.Hub.Snapshot().Chats; n != 4 {
		t.Fatalf("%d chats went out, want 4", n)
	}

	// Transfers: with no stream to drain it, the first stays under way.
	idle := h.newSession(t)
	acc := h.bulk(t, idle, `{"bytes":100000}`)
	r = h.post(t, "/sessions/"+idle+"/bulk", `{"bytes":1}`)
	ssetest.WantError(t, "second transfer", r, http.StatusTooManyRequests)
	retryAfter(t, "second transfer", r)
	// A stream drains it; then there is room again.
	d := h.events(t, idle)
	d.Expect(t, protocol.EventSession)
	b := newBulkCheck(acc, false)
	for _, m := range b.readFrom(t, d) {
		if m.Name != protocol.EventChat { // the history
			t.Fatalf("unexpected %s event", m.Name)
		}
	}
	b2 := newBulkCheck(h.bulk(t, idle, `{"bytes":1}`), false)
	b2.readFrom(t, d)
	s.Expect(t, "one")
}

// TestCapacity: beyond the stream or session cap the server answers 503
// with Retry-After, and what is open carries on.
func TestCapacity(t *testing.T) {
	t.Run("streams", func(t *testing.T) {
		h := start(t, broadcast.WithMaxStreams(1))
		sid := h.newSession(t, "one")
		s := h.events(t, sid)
		s.Expect(t, protocol.EventSession)
		other := h.newSession(t)
		for _, path := range []string{"/events?session=" + other, "/events"} {
			_, r := h.tryOpen(t, path, nil)
			ssetest.WantError(t, "GET "+path+" over the stream cap", r, http.StatusServiceUnavailable)
			retryAfter(t, "GET "+path+" over the stream cap", r)
		}
		id := h.chat(t, other, "bob", "still streaming?")
		untilChat(t, s, id)
	})
	t.Run("sessions", func(t *testing.T) {
		h := start(t, broadcast.WithMaxSessions(2))
		sid := h.newSession(t, "one")
		s := h.events(t, sid)
		s.Expect(t, protocol.EventSession)
		h.newSession(t)
		r := h.post(t, "/sessions", "")
		ssetest.WantError(t, "POST /sessions over the session cap", r, http.StatusServiceUnavailable)
		retryAfter(t, "POST /sessions over the session cap", r)
		_, r = h.tryOpen(t, "/events", nil)
		ssetest.WantError(t, "GET /events over the session cap", r, http.StatusServiceUnavailable)
		retryAfter(t, "GET /events over the session cap", r)
		if n := h.srv.Hub.SessionCount(); n != 2 {
			t.Errorf("%d sessions, want 2", n)
		}
		id := h.chat(t, sid, "ann", "still streaming?")
		untilChat(t, s, id)
	})
}

// TestRefusedStreamLeavesNoSession: a bare GET /events refused for the
// stream cap must not leave a session behind ("a bad request never changes
// state"): each such refusal would otherwise hold a session for the TTL, and
// a client retrying against a full server would fill the session cap too.
func TestRefusedStreamLeavesNoSession(t *testing.T) {
	h := start(t, broadcast.WithMaxStreams(1))
	s := h.events(t, h.newSession(t))
	s.Expect(t, protocol.EventSession)
	before := h.srv.Hub.Snapshot()
	for range 3 {
		_, r := h.tryOpen(t, "/events", nil)
		ssetest.WantError(t, "GET /events over the stream cap", r, http.StatusServiceUnavailable)
	}
	after := h.srv.Hub.Snapshot()
	if after.Sessions != before.Sessions || after.SessionsOpened != before.SessionsOpened {
		t.Fatalf("3 refused GET /events took sessions from %d to %d (opened %d to %d)",
			before.Sessions, after.Sessions, before.SessionsOpened, after.SessionsOpened)
	}
}

// TestReplaceAtStreamCap: at the stream cap, a newer stream on a session that
// already has one replaces it (PROTOCOL.md: "a newer one replaces the
// older"); the number of streams does not grow, so it is not a 503. This is a
// client whose connection died without the server noticing, reconnecting.
func TestReplaceAtStreamCap(t *testing.T) {
	h := start(t, broadcast.WithMaxStreams(1))
	sid := h.newSession(t)
	a := h.events(t, sid)
	a.Expect(t, protocol.EventSession)
	b, r := h.tryOpen(t, "/events?session="+sid, http.Header{"Last-Event-ID": {"0"}})
	if b == nil {
		t.Fatalf("replacing the only stream at the cap: %d %s", r.Status, r.Body)
	}
	a.ExpectBye(t, protocol.ByeReplaced)
	expectResumed(t, b, sid, 0, nil)
}
