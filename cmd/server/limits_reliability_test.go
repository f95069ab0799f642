package main

// The promises of RELIABILITY.md that depend on the binary itself: each limit flag
// reaches the server (a small value of each, one refusal each); the log,
// at debug level and through every endpoint and error, never holds a whole
// session id; SIGTERM lets an in-flight POST finish and exits within the
// shutdown timeout even when a reader is stuck.

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// client is a plain HTTP client against a running binary.
type client struct {
	t    *testing.T
	base string // "http://127.0.0.1:PORT" without the slash
	hc   *http.Client
}

// listen waits for the binary to say where it listens and returns a client.
func listen(t *testing.T, p *proc) *client {
	t.Helper()
	base := p.listening(t)
	return &client{t: t, base: strings.TrimSuffix(base, "/"), hc: ssetest.Client(t)}
}

// do sends a request, a body as JSON, with hdr as name, value pairs.
func (c *client) do(method, path, body string, hdr ...string) ssetest.Reply {
	c.t.Helper()
	return ssetest.Do(c.t, c.hc, method, c.base+path, header(body, hdr), body)
}

func header(body string, pairs []string) http.Header {
	h := http.Header{}
	if body != "" {
		h.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		h.Set(pairs[i], pairs[i+1])
	}
	return h
}

// want checks an answer's status, and for an error its JSON body and, for
// 429 and 503, its Retry-After.
func (c *client) want(what string, a ssetest.Reply, status int) {
	c.t.Helper()
	if a.Status != status {
		c.t.Errorf("%s: %d %s, want %d", what, a.Status, bytes.TrimSpace(a.Body), status)
		return
	}
	if status < 400 {
		return
	}
	ssetest.WantError(c.t, what, a, status)
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		if n, err := strconv.Atoi(a.Header.Get("Retry-After")); err != nil || n < 1 {
			c.t.Errorf("%s: Retry-After %q", what, a.Header.Get("Retry-After"))
		}
	}
}

func (c *client) session(channels string) string {
	c.t.Helper()
	a := c.do("POST", "/sessions", channels)
	if a.Status != http.StatusCreated {
		c.t.Fatalf("POST /sessions: %d %s", a.Status, a.Body)
	}
	return ssetest.DecodeReply[protocol.SessionCreated](c.t, "POST /sessions", a).Session
}

// open opens a stream, or returns the refusal.
func (c *client) open(path string, hdr ...string) (*ssetest.Stream, ssetest.Reply) {
	c.t.Helper()
	return ssetest.TryOpen(c.t, c.hc, c.base+path, header("", hdr))
}

// TestFlagLimits: each limit flag, set small, holds: -max-sessions and
// -max-streams answer 503 with Retry-After (a second stream of a session
// replaces the first instead), -max-body 413, -max-chat 400, -chat-rate and
// -chat-burst 429 with Retry-After, -max-bulk 413, -max-transfers 429 with
// Retry-After, -session-ttl forgets a session without a stream (freeing its
// place), and -write-timeout ends a stream whose reader stopped reading.
func TestFlagLimits(t *testing.T) {
	bin := build(t)
	p := startBinary(t, bin, "-addr", "127.0.0.1:0", "-log-level", "info",
		"-max-sessions", "4", "-max-streams", "2", "-max-body", "300", "-max-chat", "10",
		"-chat-rate", "0.01", "-chat-burst", "2", "-max-bulk", strconv.Itoa(8<<20), "-max-transfers", "1",
		"-session-ttl", "4s", "-write-timeout", "500ms")
	c := listen(t, p)

	// -max-sessions 4.
	a, b, idle1, idle2 := c.session(""), c.session(""), c.session(""), c.session("")
	c.want("a fifth session", c.do("POST", "/sessions", ""), http.StatusServiceUnavailable)

	// -max-streams 2, and one stream per session: a newer one replaces.
	sa, r := c.open("/events?session=" + a)
	c.want("stream a", r, http.StatusOK)
	sa.UntilNamed(t, protocol.EventSession)
	sb, r := c.open("/events?session=" + b)
	c.want("stream b", r, http.StatusOK)
	sb.UntilNamed(t, protocol.EventSession)
	_, r = c.open("/events?session=" + idle1)
	c.want("a third stream", r, http.StatusServiceUnavailable)
	sa2, r := c.open("/events?session="+a, "Last-Event-ID", "0")
	c.want("a second stream of session a", r, http.StatusOK)
	sa2.UntilNamed(t, protocol.EventSession)
	if bye, _ := sa.UntilNamed(t, protocol.EventBye); !strings.Contains(bye.Data, protocol.ByeReplaced) {
		t.Errorf("the replaced stream's bye: %s", bye.Data)
	}

	// -max-body 300.
	c.want("a 301-byte body", c.do("POST", "/sessions/"+a+"/chat", `{"text":"`+strings.Repeat("x", 290)+`"}`), http.StatusRequestEntityTooLarge)
	// -max-chat 10 (characters, not bytes).
	c.want("11 characters", c.do("POST", "/sessions/"+a+"/chat", `{"text":"ééééééééééé"}`), http.StatusBadRequest)
	c.want("10 characters", c.do("POST", "/sessions/"+a+"/chat", `{"text":"éééééééééé"}`), http.StatusAccepted)
	// -chat-burst 2 at -chat-rate 0.01: the third is refused.
	c.want("the second chat", c.do("POST", "/sessions/"+a+"/chat", `{"text":"two"}`), http.StatusAccepted)
	c.want("the third chat", c.do("POST", "/sessions/"+a+"/chat", `{"text":"three"}`), http.StatusTooManyRequests)
	// -max-bulk 8 MiB.
	c.want("one byte over -max-bulk", c.do("POST", "/sessions/"+idle1+"/bulk", fmt.Sprintf(`{"bytes":%d}`, 8<<20+1)), http.StatusRequestEntityTooLarge)
	// -max-transfers 1: with no stream to drain it, the first stays under way.
	c.want("a transfer", c.do("POST", "/sessions/"+idle1+"/bulk", `{"bytes":1000}`), http.StatusAccepted)
	c.want("a second transfer", c.do("POST", "/sessions/"+idle1+"/bulk", `{"bytes":1000}`), http.StatusTooManyRequests)

	// -session-ttl 4s: the sessions that never had a stream are forgotten,
	// and their places are free again.
	ssetest.Eventually(t, fmt.Sprintf("session %s… to expire with a 4s TTL", idle2[:6]), func() bool {
		return c.do("GET", "/sessions/"+idle2, "").Status == http.StatusNotFound
	})
	c.want("a session with a stream, after the TTL", c.do("GET", "/sessions/"+a, ""), http.StatusOK)
	c.want("a new session once others expired", c.do("POST", "/sessions", ""), http.StatusCreated)

	// -write-timeout 500ms: a reader that stops reading, with 8 MiB queued
	// for it, is cut off, and its session can stream again. (Its socket
	// may hold megabytes the kernel still tries to deliver after the
	// server closed it, so the server's own count is what tells.)
	sb.Close()
	ssetest.Eventually(t, "stream b to close", func() bool { return c.streams() == 1 })
	stuck := c.session(`{"channels":["one"]}`)
	c.stuckReader(stuck)
	ssetest.Eventually(t, "the stuck stream to open", func() bool { return c.streams() == 2 })
	c.want("the stuck reader's transfer", c.do("POST", "/sessions/"+stuck+"/bulk", fmt.Sprintf(`{"bytes":%d}`, 8<<20)), http.StatusAccepted)
	ssetest.Eventually(t, "the write timeout to end the stuck stream", func() bool { return c.streams() == 1 })
	s2, r := c.open("/events?session="+stuck, "Last-Event-ID", "0")
	c.want("the stuck session's stream again", r, http.StatusOK)
	s2.UntilNamed(t, protocol.EventBulk)
}

// stuckReader opens the stream of session sid and never reads it.
func (c *client) stuckReader(sid string) {
	c.t.Helper()
	ssetest.StuckReader(c.t, strings.TrimPrefix(c.base, "http://"), "/events?session="+sid)
}

// streams reads the open-stream gauge from /metrics.
func (c *client) streams() int {
	c.t.Helper()
	return int(ssetest.Metric(c.t, c.hc, c.base, "xhrsse_streams"))
}

// TestLogNeverHoldsSessionIDs: the binary at -log-level debug, taken
// through every endpoint, each with a real session id where it takes one,
// and through the errors (bad JSON, wrong method, rate limit, unknown and
// expired session, a replaced stream, a stream cut by its client, a stream
// cut by the write timeout, shutdown), logs no whole session id: an id is
// the capability to read and steer a session (PROTOCOL.md).
func TestLogNeverHoldsSessionIDs(t *testing.T) {
	bin := build(t)
	p := startBinary(t, bin, "-addr", "127.0.0.1:0", "-log-level", "debug", "-rate-one", "200",
		"-chat-burst", "1", "-session-ttl", "1s", "-write-timeout", "300ms", "-max-bulk", strconv.Itoa(8<<20))
	c := listen(t, p)
	var ids []string
	sid := func(s string) string { ids = append(ids, s); return s }

	a := sid(c.session(`{"channels":["one"]}`))
	sa, _ := c.open("/events?session=" + a)
	sa.UntilNamed(t, "one")
	// A bare GET /events announces its new session in the stream.
	bare, _ := c.open("/events")
	ev, _ := bare.Session(t)
	sid(ev.Session)
	bare.Close()
	for _, r := range []struct {
		method, path, body string
		hdr                []string
	}{
		{"GET", "/sessions/" + a, "", nil},
		{"POST", "/sessions/" + a + "/channels", `{"channel":"two","on":true}`, nil},
		{"POST", "/sessions/" + a + "/channels", `{"channel":"four","on":true}`, nil},
		{"POST", "/sessions/" + a + "/channels", `{"channel":`, nil},
		{"POST", "/sessions/" + a + "/chat", `{"text":"hello"}`, nil},
		{"POST", "/sessions/" + a + "/chat", `{"text":"over the burst"}`, nil},
		{"POST", "/sessions/" + a + "/chat", `{"text":"x","bad":1}`, nil},
		{"POST", "/sessions/" + a + "/bulk", `{"bytes":1000}`, nil},
		{"POST", "/sessions/" + a + "/bulk", `{"file":"../etc/passwd"}`, nil},
		{"POST", "/sessions/" + a + "/bulk", `{"bytes":999999999999}`, nil},
		{"GET", "/sessions/" + a + "/chat", "", nil},
		{"DELETE", "/sessions/" + a, "", nil},
		{"POST", "/sessions/" + a + "/chat", `{"text":"x"}`, []string{"Origin", "http://evil.example"}},
		{"OPTIONS", "/sessions/" + a + "/chat", "", []string{"Origin", "http://evil.example"}},
		{"GET", "/events?session=" + a + "&lastEventId=x", "", nil},
		{"GET", "/nope/" + a, "", nil},
		{"GET", "/channels", "", nil},
		{"GET", "/files", "", nil},
		{"GET", "/healthz", "", nil},
		{"GET", "/metrics", "", nil},
		{"GET", "/", "", nil},
	} {
		c.do(r.method, r.path, r.body, r.hdr...)
	}
	// A session id that is not (or no longer) one: unknown everywhere.
	gone := sid(c.session(""))
	ssetest.Eventually(t, "the session to expire", func() bool {
		return c.do("GET", "/sessions/"+gone, "").Status == http.StatusNotFound
	})
	c.do("POST", "/sessions/"+gone+"/chat", `{"text":"x"}`)
	c.do("GET", "/events?session="+gone, "")
	// Replaced, then cut by its client.
	sa2, _ := c.open("/events?session="+a, "Last-Event-ID", "1")
	sa.UntilNamed(t, protocol.EventBye)
	sa2.UntilNamed(t, protocol.EventSession)
	sa2.Close()
	// Cut by the write timeout: a reader that stops reading.
	stuck := sid(c.session(`{"channels":["one"]}`))
	c.stuckReader(stuck)
	time.Sleep(200 * time.Millisecond)
	c.do("POST", "/sessions/"+stuck+"/bulk", fmt.Sprintf(`{"bytes":%d}`, 8<<20))
	time.Sleep(time.Second)
	// Shutdown with a stream open.
	last, r := c.open("/events?session=" + sid(c.session("")))
	c.want("the last stream", r, http.StatusOK)
	last.UntilNamed(t, protocol.EventSession)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	last.UntilNamed(t, protocol.EventBye)
	p.waitExit(t, wait)

	log := p.log()
	if !strings.Contains(log, "level=DEBUG") || !strings.Contains(log, "stream ended") {
		t.Fatalf("the debug log has no stream lines, so it proves nothing:\n%s", log)
	}
	if !strings.Contains(log, a[:6]+"…") {
		t.Errorf("the log never names session %s… even shortened: is it logging the streams?", a[:6])
	}
	for _, id := range ids {
		if len(id) < 22 {
			t.Fatalf("session id %q is shorter than 128 bits", id)
		}
		// Not the whole id, nor any 12 characters of it (72 bits): the log
		// may name a session by its first 6 only.
		for k := 0; k+12 <= len(id); k++ {
			if i := strings.Index(log, id[k:k+12]); i >= 0 {
				t.Errorf("the log holds 12 characters of session id %s… at byte %d:\n%s", id[:6], i, log[max(0, i-200):min(len(log), i+100)])
				break
			}
		}
	}
}

// TestSIGTERMDrains: SIGTERM ends every stream with bye "shutdown", lets a
// POST already being read finish (202), and the binary exits 0 within its
// shutdown timeout.
func TestSIGTERMDrains(t *testing.T) {
	bin := build(t)
	const shutdownTimeout = 10 * time.Second
	p := startBinary(t, bin, "-addr", "127.0.0.1:0", "-rate-one", "100", "-shutdown-timeout", shutdownTimeout.String())
	c := listen(t, p)
	var streams []*ssetest.Stream
	var sids []string
	for range 3 {
		sid := c.session(`{"channels":["one"]}`)
		s, _ := c.open("/events?session=" + sid)
		s.UntilNamed(t, "one")
		streams, sids = append(streams, s), append(sids, sid)
	}
	// In flight: the headers are read and the body asked for (100 Continue),
	// so the handler runs when SIGTERM comes.
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(c.base, "http://"), wait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * wait))
	body := `{"name":"ann","text":"last words"}`
	fmt.Fprintf(conn, "POST /sessions/%s/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", sids[0], len(body))
	br := bufio.NewReader(conn)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "100 Continue") {
		t.Fatalf("want 100 Continue, got %q %v", line, err)
	}
	br.ReadString('\n')

	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, s := range streams {
		s.ExpectBye(t, protocol.ByeShutdown) // and then the end
	}
	if _, err := conn.Write([]byte(body)); err != nil {
		t.Fatalf("the in-flight POST's body: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the in-flight POST: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("the in-flight POST: %d, want 202", resp.StatusCode)
	}
	if code := p.waitExit(t, shutdownTimeout); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, p.log())
	}
	t.Logf("exited %v after SIGTERM", time.Since(signalled).Round(time.Millisecond))
}

// TestSIGTERMStuckReader: a reader that stopped reading cannot hold the
// binary past its shutdown timeout; the other streams still get their bye.
func TestSIGTERMStuckReader(t *testing.T) {
	bin := build(t)
	const shutdownTimeout = 2 * time.Second
	p := startBinary(t, bin, "-addr", "127.0.0.1:0", "-rate-one", "100", "-shutdown-timeout", shutdownTimeout.String(), "-max-bulk", strconv.Itoa(64<<20))
	c := listen(t, p)
	ok := c.session(`{"channels":["one"]}`)
	s, _ := c.open("/events?session=" + ok)
	s.UntilNamed(t, "one")
	stuck := c.session(`{"channels":["one"]}`)
	c.stuckReader(stuck)
	time.Sleep(200 * time.Millisecond)
	c.want("the stuck reader's transfer", c.do("POST", "/sessions/"+stuck+"/bulk", fmt.Sprintf(`{"bytes":%d}`, 64<<20)), http.StatusAccepted)
	time.Sleep(time.Second) // its write blocks (the default write timeout is 30 s)

	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if bye, _ := s.UntilNamed(t, protocol.EventBye); !strings.Contains(bye.Data, protocol.ByeShutdown) {
		t.Errorf("bye %s", bye.Data)
	}
	// Exit within the timeout, and a margin for a loaded machine.
	code := p.waitExit(t, shutdownTimeout+wait/2)
	took := time.Since(signalled)
	t.Logf("exited with code %d %v after SIGTERM (shutdown timeout %v)", code, took.Round(time.Millisecond), shutdownTimeout)
	if took > shutdownTimeout+5*time.Second {
		t.Errorf("exit took %v, shutdown timeout %v", took, shutdownTimeout)
	}
}
