package server_test

// The bad-input cases of RELIABILITY.md that TestErrors does not have: truncated,
// deeply nested and wrongly typed JSON on every POST, unknown fields on each
// body, NUL bytes in every string, sizes that overflow, more path traversal
// (backslashes, dot segments, escapes, a symlink to a directory and a chain
// of symlinks out of -files), odd session ids and Last-Event-IDs. Same
// checks as TestErrors: the right status, a JSON error body, no state
// changed, and an open stream undisturbed.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// linksFixture is filesFixture plus a symlink to a directory outside the
// files dir and a symlink to the symlink that leads out.
func linksFixture(t *testing.T) string {
	t.Helper()
	dir := filesFixture(t)
	outDir := filepath.Join(filepath.Dir(dir), "outdir")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outDir, "secret"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, to := range map[string]string{"linkdir": outDir, "hop": filepath.Join(dir, "link"), "relhop": "../outside"} {
		if err := os.Symlink(to, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestBadInput: every case answers its status with a JSON error, changes
// nothing, and leaves an open stream alone.
func TestBadInput(t *testing.T) {
	h := start(t, broadcast.WithFilesDir(linksFixture(t)), broadcast.WithMaxBulk(1<<20))
	sid := h.newSession(t, "one")
	victim := h.events(t, sid)
	victim.Expect(t, protocol.EventSession)
	before := h.srv.Hub.Snapshot()

	const (
		tune = "/sessions/{sid}/channels"
		chat = "/sessions/{sid}/chat"
		bulk = "/sessions/{sid}/bulk"
	)
	nested := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	unknownID := "AAAAAAAAAAAAAAAAAAAAAA" // the shape of a session id, but none
	cases := []struct {
		name, method, path string
		ct                 string // Content-Type; "" for none
		hdr                map[string]string
		body               string
		status             int
	}{
		// Truncated and malformed JSON, on every POST.
		{"tune truncated in a list", "POST", tune, "application/json", nil, `{"channels":["one"`, 400},
		{"chat truncated in a string", "POST", chat, "application/json", nil, `{"text":"abc`, 400},
		{"bulk truncated after a key", "POST", bulk, "application/json", nil, `{"bytes"`, 400},
		{"new session truncated", "POST", "/sessions", "application/json", nil, `{"channels":[`, 400},
		{"chat only whitespace", "POST", chat, "application/json", nil, "  \n\t ", 400},
		{"chat a bare string", "POST", chat, "application/json", nil, `"hi"`, 400},
		{"chat deeply nested", "POST", chat, "application/json", nil, `{"text":` + nested + `}`, 400},
		{"new session deeply nested", "POST", "/sessions", "application/json", nil, `{"channels":` + nested + `}`, 400},
		{"chat raw control byte in a string", "POST", chat, "application/json", nil, "{\"text\":\"a\x01b\"}", 400},
		{"chat raw NUL byte in a string", "POST", chat, "application/json", nil, "{\"text\":\"a\x00b\"}", 400},
		{"chat single quotes", "POST", chat, "application/json", nil, `{'text':'hi'}`, 400},
		{"chat two objects", "POST", chat, "application/json", nil, `{"text":"a"}{"text":"b"}`, 400},

		// Wrong types.
		{"chat text a number", "POST", chat, "application/json", nil, `{"text":5}`, 400},
		{"chat text a list", "POST", chat, "application/json", nil, `{"text":["hi"]}`, 400},
		{"chat name an object", "POST", chat, "application/json", nil, `{"name":{},"text":"x"}`, 400},
		{"bulk file a number", "POST", bulk, "application/json", nil, `{"file":1}`, 400},
		{"bulk bytes a bool", "POST", bulk, "application/json", nil, `{"bytes":true}`, 400},
		{"tune channels of numbers", "POST", tune, "application/json", nil, `{"channels":[1]}`, 400},
		{"tune on null", "POST", tune, "application/json", nil, `{"channel":"one","on":null}`, 400},
		{"tune channel a list", "POST", tune, "application/json", nil, `{"channel":["one"],"on":true}`, 400},
		{"new session channels an object", "POST", "/sessions", "application/json", nil, `{"channels":{"one":true}}`, 400},

		// Unknown fields: refused on every body.
		{"chat unknown field", "POST", chat, "application/json", nil, `{"text":"x","html":true}`, 400},
		{"bulk unknown field", "POST", bulk, "application/json", nil, `{"bytes":1,"mode":"fast"}`, 400},
		{"new session unknown field", "POST", "/sessions", "application/json", nil, `{"channels":[],"ttl":1}`, 400},
		{"field names are not case-folded twice", "POST", chat, "application/json", nil, `{"text":"x","Text":"y","TEXT":"z","texT":"w","extra":1}`, 400},

		// NUL in every string.
		{"chat name with NUL", "POST", chat, "application/json", nil, `{"name":"a\u0000","text":"x"}`, 400},
		{"bulk file with NUL", "POST", bulk, "application/json", nil, `{"file":"ok.bin\u0000"}`, 404},
		{"tune channel with NUL", "POST", tune, "application/json", nil, `{"channel":"one\u0000","on":true}`, 404},
		{"new session channel with NUL", "POST", "/sessions", "application/json", nil, `{"channels":["\u0000"]}`, 404},

		// Sizes.
		{"bulk bytes overflow int64", "POST", bulk, "application/json", nil, `{"bytes":99999999999999999999}`, 400},
		{"bulk bytes a fraction", "POST", bulk, "application/json", nil, `{"bytes":1.5}`, 400},
		{"bulk bytes with an exponent", "POST", bulk, "application/json", nil, `{"bytes":1e3}`, 400},
		{"bulk bytes most negative", "POST", bulk, "application/json", nil, `{"bytes":-9223372036854775808}`, 400},
		{"bulk bytes largest int64", "POST", bulk, "application/json", nil, `{"bytes":9223372036854775807}`, 413},
		{"bulk bytes one over the cap", "POST", bulk, "application/json", nil, fmt.Sprintf(`{"bytes":%d}`, 1<<20+1), 413},
		{"bulk empty file name", "POST", bulk, "application/json", nil, `{"file":""}`, 400},

		// Path traversal and symlinks out of -files.
		{"backslash traversal", "POST", bulk, "application/json", nil, `{"file":"..\\outside"}`, 404},
		{"dot slash", "POST", bulk, "application/json", nil, `{"file":"./ok.bin"}`, 404},
		{"dot-dot inside", "POST", bulk, "application/json", nil, `{"file":"sub/../ok.bin"}`, 404},
		{"trailing slash", "POST", bulk, "application/json", nil, `{"file":"ok.bin/"}`, 404},
		{"percent-encoded traversal", "POST", bulk, "application/json", nil, `{"file":"%2e%2e%2foutside"}`, 404},
		{"JSON-escaped traversal", "POST", bulk, "application/json", nil, `{"file":"\u002e\u002e\u002foutside"}`, 404},
		{"dot dot", "POST", bulk, "application/json", nil, `{"file":".."}`, 404},
		{"symlink to a directory outside", "POST", bulk, "application/json", nil, `{"file":"linkdir"}`, 404},
		{"through a symlinked directory", "POST", bulk, "application/json", nil, `{"file":"linkdir/secret"}`, 404},
		{"symlink to a symlink out", "POST", bulk, "application/json", nil, `{"file":"hop"}`, 404},
		{"relative symlink out", "POST", bulk, "application/json", nil, `{"file":"relhop"}`, 404},
		{"home directory", "POST", bulk, "application/json", nil, `{"file":"~/.profile"}`, 404},

		// Sessions and ids.
		{"GET an unknown session", "GET", "/sessions/" + unknownID, "", nil, "", 404},
		{"chat an id-shaped unknown session", "POST", "/sessions/" + unknownID + "/chat", "application/json", nil, `{"text":"x"}`, 404},
		{"stream an id-shaped unknown session", "GET", "/events?session=" + unknownID, "", nil, "", 404},
		{"session id with a traversal", "POST", "/sessions/..%2F..%2Fetc/chat", "application/json", nil, `{"text":"x"}`, 404},
		{"session id with NUL", "POST", "/sessions/%00/chat", "application/json", nil, `{"text":"x"}`, 404},
		{"session id, a prefix of a real one", "POST", "/sessions/{sid6}/chat", "application/json", nil, `{"text":"x"}`, 404},
		{"session id, a real one upper-cased", "POST", "/sessions/{SID}/chat", "application/json", nil, `{"text":"x"}`, 404},
		{"Last-Event-ID overflows", "GET", "/events?session={sid}", "", map[string]string{"Last-Event-ID": "18446744073709551616"}, "", 400},
		{"lastEventId with a space", "GET", "/events?session={sid}&lastEventId=%205", "", nil, "", 400},
		{"Last-Event-ID a fraction", "GET", "/events?session={sid}", "", map[string]string{"Last-Event-ID": "5.0"}, "", 400},
		{"lastEventId hex", "GET", "/events?session={sid}&lastEventId=0x10", "", nil, "", 400},

		// Methods and content types.
		{"PATCH chat", "PATCH", chat, "application/json", nil, `{"text":"x"}`, 405},
		{"DELETE a session", "DELETE", "/sessions/{sid}", "", nil, "", 405},
		{"TRACE /sessions", "TRACE", "/sessions", "", nil, "", 405},
		{"PUT bulk", "PUT", bulk, "application/json", nil, `{"bytes":1}`, 405},
		{"application/jsonp", "POST", chat, "application/jsonp", nil, `{"text":"x"}`, 415},
		{"multipart", "POST", bulk, "multipart/form-data; boundary=x", nil, "--x--", 415},
		{"JSON as text/json", "POST", tune, "text/json", nil, `{"channels":[]}`, 415},
	}
	upper := strings.ToUpper(sid)
	if upper == sid {
		t.Fatalf("session id %q has no letters to upper-case", sid)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := strings.NewReplacer("{sid6}", sid[:6], "{SID}", upper, "{sid}", sid).Replace(c.path)
			hdr := map[string]string{}
			if c.ct != "" {
				hdr["Content-Type"] = c.ct
			}
			for k, v := range c.hdr {
				hdr[k] = v
			}
			r := h.request(t, c.method, path, hdr, c.body)
			ssetest.WantError(t, c.name, r, c.status)
		})
	}

	h.unchanged(t, before, sid, victim, false)
}

// TestChatInvalidUTF8Refused: chat text or a name that is not valid UTF-8
// (raw bytes, or an escaped lone surrogate, which encodes no character) is
// a bad field: 400, and no chat goes out (PROTOCOL.md: "400 bad JSON or
// field", "a bad request never changes state"; RELIABILITY.md lists invalid UTF-8
// in chat). encoding/json would otherwise replace the bad bytes with U+FFFD
// and the server would relay text the sender never wrote.
func TestChatInvalidUTF8Refused(t *testing.T) {
	h := start(t)
	sid := h.newSession(t)
	s := h.events(t, sid)
	s.Expect(t, protocol.EventSession)
	for _, c := range []struct{ name, body string }{
		{"raw invalid byte in text", "{\"text\":\"a\xffb\"}"},
		{"truncated sequence in text", "{\"text\":\"caf\xc3\"}"},
		{"overlong encoding in text", "{\"text\":\"\xc0\xafetc\"}"},
		{"encoded surrogate in text", "{\"text\":\"\xed\xa0\x80\"}"},
		{"raw invalid byte in name", "{\"name\":\"\xfe\",\"text\":\"hi\"}"},
		{"escaped lone surrogate in text", `{"text":"a\ud800b"}`},
		{"escaped lone low surrogate in name", `{"name":"\udc00","text":"hi"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := h.srv.Hub.Snapshot().Chats
			r := h.post(t, "/sessions/"+sid+"/chat", c.body)
			ssetest.WantError(t, c.name, r, http.StatusBadRequest)
			if n := h.srv.Hub.Snapshot().Chats; n != before {
				t.Errorf("%s: a chat went out (%d chats, were %d)", c.name, n, before)
			}
		})
	}
}
