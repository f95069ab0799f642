package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// The POST endpoints FuzzDecodeRequests drives, by the fuzzer's kind byte.
var fuzzRoutes = []string{"/sessions", "/sessions/{id}/channels", "/sessions/{id}/chat", "/sessions/{id}/bulk"}

// fuzzMaxBody is small, so the fuzzer reaches the limit.
const fuzzMaxBody = 512

// FuzzDecodeRequests posts arbitrary bodies to the four POST endpoints of a
// real hub and server (no network: the handlers are called directly) and
// checks each answer against a reference reading of the body:
//
//   - the answer is never a 5xx, always JSON: {"error": non-empty} for a
//     refusal, the endpoint's answer otherwise;
//   - a body that is not exactly one JSON object of the endpoint's type
//     with known fields only, within the body limit, is refused (400, or 413
//     when it is over the limit);
//   - one that is such an object is judged on its fields alone: a chat by
//     broadcast.CheckChat, a tuning by the channel names, a transfer by its
//     size and file name, exactly as the protocol says; a chat whose body is
//     not UTF-8 or escapes a lone surrogate is refused (see
//     TestChatInvalidUTF8Refused), and any such body may be;
//   - a refused request changes nothing (no session, chat or transfer, the
//     tuned set as it was), an accepted one exactly one thing, and a tuning
//     answers the set the session then has.
//
// Seeds: the f.Add calls below and testdata/fuzz/FuzzDecodeRequests.
func FuzzDecodeRequests(f *testing.F) {
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ok.bin"), []byte("0123456789"), 0o644); err != nil {
		f.Fatal(err)
	}
	hub, err := broadcast.New(
		broadcast.WithFilesDir(dir),
		broadcast.WithMaxBulk(1<<16), // hashing stays cheap
		broadcast.WithChatRate(1e9, 1<<30),
	)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { hub.Close(f.Context()) })
	srv, err := New(hub, Config{MaxBody: fuzzMaxBody})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []struct {
		kind uint8
		body string
	}{
		{0, ``}, {0, `{"channels":["one","three"]}`}, {0, `{"channels":"one"}`}, {0, `{"channels":["four"]}`},
		{1, `{"channel":"two","on":true}`}, {1, `{"channels":[]}`}, {1, `{"channels":["one","one"]}`},
		{1, `{"channel":"one"}`}, {1, `{"channel":"one","on":false,"channels":[]}`}, {1, `{"on":true}`},
		{2, `{"name":"ann","text":"hi"}`}, {2, `{"text":"a\u0000b"}`}, {2, `{"text":""}`},
		{2, `{"text":"<b>\u001b[31m\u202e"}`}, {2, `{"text":"x"} {}`}, {2, `{"text":"x","y":1}`},
		{3, `{"bytes":0}`}, {3, `{"bytes":65537}`}, {3, `{"bytes":-1}`}, {3, `{"file":"ok.bin"}`},
		{3, `{"file":"../ok.bin"}`}, {3, `{"bytes":1,"file":"ok.bin"}`}, {3, `{"bytes":1e2}`},
		{2, "{\"text\":\"a\xffb\"}"}, {1, "{\"channel\":\"\xff\",\"on\":true}"},
	} {
		f.Add(s.kind, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		route := fuzzRoutes[int(kind)%len(fuzzRoutes)]
		sess, err := hub.NewSession([]string{"one"})
		if err != nil {
			t.Fatal(err)
		}
		defer hub.Drop(sess)
		before, chans := hub.Snapshot(), sess.Channels()

		req := httptest.NewRequest(http.MethodPost, strings.Replace(route, "{id}", sess.ID(), 1), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		status, answer := rec.Code, rec.Body.Bytes()
		after := hub.Snapshot()

		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("%s %q: %d with Content-Type %q", route, body, status, ct)
		}
		if status >= 400 {
			var e protocol.Error
			if err := strictJSON(answer, &e); err != nil || e.Error == "" {
				t.Fatalf("%s %q: %d with body %q, not a JSON error", route, body, status, answer)
			}
		}
		refused := status >= 400
		if status >= 500 || !slices.Contains([]int{200, 201, 202, 400, 404, 413}, status) {
			t.Fatalf("%s %q: status %d (%s)", route, body, status, answer)
		}

		// The reference reading.
		var want int // the status the fields call for, 0: any 2xx
		over := len(body) > fuzzMaxBody
		switch kind := int(kind) % len(fuzzRoutes); kind {
		case 0:
			var cs protocol.CreateSession
			if ok := len(bytes.Trim(body, " \t\r\n")) == 0 || strictJSON(body, &cs) == nil; !ok || over {
				want = badBody(over)
				break
			}
			if !knownChannels(cs.Channels) {
				want = http.StatusNotFound
			}
		case 1:
			var tn protocol.Tune
			if err := strictJSON(body, &tn); err != nil || over {
				want = badBody(over)
				break
			}
			switch {
			case tn.Channels != nil && (tn.Channel != "" || tn.On != nil), tn.Channels == nil && (tn.Channel == "" || tn.On == nil):
				want = http.StatusBadRequest
			case tn.Channels != nil && !knownChannels(tn.Channels), tn.Channels == nil && !knownChannels([]string{tn.Channel}):
				want = http.StatusNotFound
			}
		case 2:
			var c protocol.ChatPost
			if err := strictJSON(body, &c); err != nil || over {
				want = badBody(over)
				break
			}
			// Text that is not UTF-8 is a bad field (encoding/json would
			// turn it into U+FFFD: not what was sent).
			if !utf8.Valid(body) || loneSurrogate(body) || broadcast.CheckChat(c.Name, c.Text, protocol.DefaultMaxChatText) != nil {
				want = http.StatusBadRequest
			}
		case 3:
			var b protocol.BulkPost
			if err := strictJSON(body, &b); err != nil || over {
				want = badBody(over)
				break
			}
			switch {
			case (b.Bytes != nil) == (b.File != ""), b.Bytes != nil && *b.Bytes < 0:
				want = http.StatusBadRequest
			case b.Bytes != nil && *b.Bytes > 1<<16:
				want = http.StatusRequestEntityTooLarge
			case b.File != "" && b.File != "ok.bin":
				want = http.StatusNotFound
			}
		}
		if (!utf8.Valid(body) || loneSurrogate(body)) && status == http.StatusBadRequest {
			// Refusing a body that is not UTF-8 (or escapes a lone
			// surrogate) as such is right anywhere.
			want = status
		}
		switch {
		case want == 0 && refused:
			t.Fatalf("%s %q: refused %d (%s), but it is a good request", route, body, status, answer)
		case want != 0 && status != want:
			// Over the limit, a syntax error before the limit is a 400.
			if !(want == http.StatusRequestEntityTooLarge && status == http.StatusBadRequest && over) {
				t.Fatalf("%s %q: status %d (%s), want %d", route, body, status, answer, want)
			}
		}

		// State: nothing changed on a refusal, one thing on an answer.
		changed := map[string]int64{
			"sessions opened": after.SessionsOpened - before.SessionsOpened,
			"chats":           after.Chats - before.Chats,
			"transfers":       after.BulkStarted - before.BulkStarted,
		}
		wantChange := map[string]int64{}
		if !refused {
			switch int(kind) % len(fuzzRoutes) {
			case 0:
				wantChange["sessions opened"] = 1
				var sc protocol.SessionCreated
				if err := strictJSON(answer, &sc); err != nil {
					t.Fatalf("answer %q: %v", answer, err)
				}
				if s, ok := hub.Session(sc.Session); ok {
					hub.Drop(s)
				}
			case 1:
				var tn protocol.Tuned
				if err := strictJSON(answer, &tn); err != nil || !slices.Equal(tn.Channels, sess.Channels()) {
					t.Fatalf("tune %q answered %q, the session has %q", body, answer, sess.Channels())
				}
			case 2:
				wantChange["chats"] = 1
			case 3:
				wantChange["transfers"] = 1
				var acc protocol.BulkAccepted
				if err := strictJSON(answer, &acc); err != nil || acc.Chunks != protocol.Chunks(acc.Bytes) || len(acc.SHA256) != 64 {
					t.Fatalf("bulk %q answered %q", body, answer)
				}
			}
		} else if got := sess.Channels(); !slices.Equal(got, chans) {
			t.Fatalf("refused %s %q changed the tuned set from %q to %q", route, body, chans, got)
		}
		for what, n := range changed {
			if n != wantChange[what] {
				t.Fatalf("%s %q answered %d and changed %s by %d, want %d", route, body, status, what, n, wantChange[what])
			}
		}
	})
}

// strictJSON is the reference reading: exactly one JSON value, no unknown
// field, nothing after it.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the value")
	}
	return nil
}

func badBody(over bool) int {
	if over {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

func knownChannels(names []string) bool {
	for _, n := range names {
		if n != "one" && n != "two" && n != "three" {
			return false
		}
	}
	return true
}
