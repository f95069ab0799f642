package proxytest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/client"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// promptly bounds how long a chat may take from its POST to its event when
// nothing else flows, through nginx. A proxy that buffers holds a small event
// until its buffer fills or the stream ends, which here is never, so any
// bound tells the two apart; this one is generous for a loaded machine.
const promptly = 2 * time.Second

// chatArrives POSTs a chat through base and returns how long it took to show
// on st, failing the test if it takes longer than promptly.
func chatArrives(t *testing.T, hc *http.Client, base, session, text string, st *ssetest.Stream) time.Duration {
	t.Helper()
	start := time.Now()
	ssetest.MustPost(t, hc, base+"/sessions/"+session+"/chat", protocol.ChatPost{Name: "nginx", Text: text}, nil)
	st.UntilWithin(t, promptly, "chat "+text, func(m protocol.Message) bool {
		return m.Name == protocol.EventChat && strings.Contains(m.Data, text)
	})
	return time.Since(start)
}

// TestNginxPassesTheStreamAtOnce opens a quiet stream through nginx (nothing
// tuned, so no other traffic flows) and checks what nginx makes of it: the
// stream's headers arrive intact, nothing compresses it or gives it a length,
// and each chat POSTed through nginx is on the stream within a blink rather
// than held in a buffer.
func TestNginxPassesTheStreamAtOnce(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ng := startNginx(t, srv.Addr, nginxTweaks{})
	// No transparent decompression: the test must see a Content-Encoding.
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}

	session := ssetest.NewSession(t, hc, ng.URL)
	st := openStream(t, hc, ng.URL+"/events?session="+session, http.Header{"Accept-Encoding": {"gzip, deflate, br"}})
	h := st.Response.Header
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("Content-Type %q through nginx", ct)
	}
	if ce := h.Get("Content-Encoding"); ce != "" {
		t.Errorf("nginx compressed the stream: Content-Encoding %q", ce)
	}
	if st.Response.ContentLength != -1 || h.Get("Content-Length") != "" {
		t.Errorf("the stream has a length (%d, %q)", st.Response.ContentLength, h.Get("Content-Length"))
	}
	if cc := h.Get("Cache-Control"); !strings.Contains(cc, "no-cache") || !strings.Contains(cc, "no-transform") {
		t.Errorf("Cache-Control %q through nginx, want no-cache, no-transform", cc)
	}
	if se, _ := st.Session(t); se.Session != session || se.Resumed {
		t.Fatalf("session event %+v, want session %s, not resumed", se, protocol.ShortID(session))
	}

	// The same, straight to the server, for comparison in the log.
	direct := openStream(t, hc, srv.URL+"/events", nil)
	directSession, _ := direct.Session(t)
	var through, straight latencies
	for i := range 5 {
		through = append(through, chatArrives(t, hc, ng.URL, session, fmt.Sprintf("through nginx %d", i), st))
		straight = append(straight, chatArrives(t, hc, srv.URL, directSession.Session, fmt.Sprintf("straight %d", i), direct))
	}
	t.Logf("chat POST to event, through nginx: %v; straight to the server: %v", through, straight)
}

// TestNginxCompressingConfig is the control of the test above, and a guard
// for a common edit of the example: adding text/event-stream to gzip_types.
// nginx's gzip needs buffered input, so a proxy that buffers and compresses
// the stream holds every event (here not even the headers come); the
// server's "X-Accel-Buffering: no" turns nginx's buffering off for the
// stream, and nginx then compresses it but flushes each event at once. (On
// its own, buffering does not hold events in nginx 1.22: it passes on what
// it reads while the client keeps up.)
func TestNginxCompressingConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		location string
		prompt   bool
	}{
		{"X-Accel-Buffering honoured", "gzip_types text/event-stream;", true},
		{"control: X-Accel-Buffering ignored", "gzip_types text/event-stream; proxy_ignore_headers X-Accel-Buffering;", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			ng := startNginx(t, srv.Addr, nginxTweaks{location: tc.location})
			hc := ssetest.Client(t)
			session := ssetest.NewSession(t, hc, ng.URL)
			// Sent before the stream opens, so it is among its first events.
			ssetest.MustPost(t, hc, ng.URL+"/sessions/"+session+"/chat", protocol.ChatPost{Name: "nginx", Text: "compressed?"}, nil)

			ctx, cancel := context.WithTimeout(context.Background(), promptly)
			defer cancel()
			arrived, compressed := false, false
			// The transport asks for gzip and decompresses on the fly.
			if st, _, err := ssetest.Connect(ctx, hc, ng.URL+"/events?session="+session, nil); err == nil && st != nil {
				compressed = st.Response.Uncompressed
				for {
					ev, err := st.Recv(promptly) // the stream ends with ctx
					if err != nil {
						break
					}
					if ev.Name == protocol.EventChat {
						arrived = true
						break
					}
				}
				st.Close()
			}
			switch {
			case tc.prompt && !arrived:
				t.Errorf("the chat did not arrive within %v through a compressing nginx that honours X-Accel-Buffering", promptly)
			case tc.prompt && !compressed:
				t.Errorf("nginx did not compress the stream; the test no longer covers a compressing config")
			case !tc.prompt && arrived:
				t.Errorf("the chat arrived through a buffering, compressing nginx; this control no longer shows a proxy that holds events")
			}
		})
	}
}

// TestNginxSteering runs the features of the protocol through nginx with the
// Go client, over HTTP/1.1 and over HTTPS with HTTP/2: tuning in and out on
// the live stream, chat, a 5 MiB bulk transfer verified by its sha256, and
// POSTs carrying the Origin a browser sends, which the server accepts only
// because the example passes the Host on with its port.
func TestNginxSteering(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ng := startNginx(t, srv.Addr, nginxTweaks{})
	cases := []struct {
		name  string
		base  string
		hc    *http.Client
		proto string
	}{
		{"http1.1", ng.URL, ssetest.Client(t), "HTTP/1.1"},
		{"h2", ng.TLSURL, ng.TLSClient(t), "HTTP/2.0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := &protoRecorder{base: tc.hc.Transport}
			hc := &http.Client{Transport: rec}
			c := newClient(t, tc.base, hc, client.WithOrigin(tc.base))
			ctx, cancel := context.WithTimeout(context.Background(), ssetest.Wait)
			defer cancel()

			page, err := hc.Get(tc.base + "/")
			if err != nil {
				t.Fatal(err)
			}
			page.Body.Close()
			if page.StatusCode != http.StatusOK || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
				t.Errorf("GET / through nginx: %s %q", page.Status, page.Header.Get("Content-Type"))
			}

			s, err := c.Open(ctx, "one")
			if err != nil {
				t.Fatalf("POST /sessions with Origin %s through nginx: %v", tc.base, err)
			}
			r := startRun(t, s)
			i, _ := r.wait(t, 0, ssetest.Wait, "a tick of one", isTick("one"))

			if _, err := s.Tune(ctx, "two", true); err != nil {
				t.Fatal(err)
			}
			i, _ = r.wait(t, i, ssetest.Wait, "tuned one+two", isTuned("one", "two"))
			i, _ = r.wait(t, i, ssetest.Wait, "a tick of two", isTick("two"))

			// Tuned out of everything: from the tuned event on, the stream
			// carries no tick, up to the chat sent after it.
			if _, err := s.SetChannels(ctx, nil); err != nil {
				t.Fatal(err)
			}
			off, _ := r.wait(t, i, ssetest.Wait, "tuned to nothing", isTuned())
			text := "hello through nginx over " + tc.name
			if _, err := s.Chat(ctx, "nginx", text); err != nil {
				t.Fatal(err)
			}
			chat, _ := r.wait(t, off, ssetest.Wait, "the chat", func(ev client.Event) bool {
				return ev.Kind == client.Chat && ev.Chat.Text == text
			})
			for _, ev := range r.events()[off:chat] {
				if ev.Kind == client.Tick {
					t.Errorf("a tick of %s after the stream said nothing is tuned", ev.Channel)
				}
			}

			const size = 5 << 20
			h := sha256.New()
			n := int64(size)
			start := time.Now()
			tr, err := s.Bulk(ctx, protocol.BulkPost{Bytes: &n}, h)
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.Wait(ctx); err != nil {
				t.Fatalf("5 MiB through nginx: %v", err)
			}
			took := time.Since(start)
			t.Logf("5 MiB through nginx over %s in %v (%.0f MB/s)", tc.name, took.Round(time.Millisecond), float64(size)/1e6/took.Seconds())
			got := hex.EncodeToString(h.Sum(nil))
			if acc := tr.Accepted(); got != acc.SHA256 || tr.SHA256() != acc.SHA256 || acc.Bytes != size {
				t.Errorf("received sha256 %s, announced %s (%d bytes), client says %s", got, acc.SHA256, acc.Bytes, tr.SHA256())
			}

			// The origin check still works behind nginx.
			status, err := ssetest.PostJSON(ctx, hc, tc.base+"/sessions/"+s.ID()+"/chat", http.Header{"Origin": {"https://elsewhere.example"}},
				protocol.ChatPost{Name: "x", Text: "from another site"}, nil)
			if status != http.StatusForbidden {
				t.Errorf("a POST from a foreign origin through nginx: %d %v, want 403", status, err)
			}
			if err := r.stop(); err != nil {
				t.Errorf("Run: %v", err)
			}
			for proto, n := range rec.protos() {
				if proto != tc.proto {
					t.Errorf("%d answers over %s, want every one over %s", n, proto, tc.proto)
				}
			}
		})
	}
}

func isTick(ch string) func(client.Event) bool {
	return func(ev client.Event) bool { return ev.Kind == client.Tick && ev.Channel == ch }
}

func isTuned(chans ...string) func(client.Event) bool {
	return func(ev client.Event) bool {
		return ev.Kind == client.Tuned && slices.Equal(ev.Tuned.Channels, chans)
	}
}

// TestNginxResume drops a stream through nginx and resumes it through nginx
// with the last id seen, sent both ways a client can: the Last-Event-ID
// header (as EventSource does) and the lastEventId query parameter. Each time
// the stream picks up at the next id, with the events sent in the meantime.
func TestNginxResume(t *testing.T) {
	t.Parallel()
	srv := startServer(t)
	ng := startNginx(t, srv.Addr, nginxTweaks{})
	hc := ssetest.Client(t)
	session := ssetest.NewSession(t, hc, ng.URL, "one")
	url := ng.URL + "/events?session=" + session

	// read takes n events from st after the session event and returns the
	// last id, checking that ids go up by one from first.
	read := func(st *ssetest.Stream, first uint64, n int) uint64 {
		t.Helper()
		want := first
		for range n {
			m := st.Next(t)
			if id := ssetest.ID(t, m); id != want {
				t.Fatalf("%s event has id %d, want %d", m.Name, id, want)
			}
			want++
		}
		return want - 1
	}
	st := openStream(t, hc, url, nil)
	if se, pos := st.Session(t); se.Resumed || pos != 0 {
		t.Fatalf("first stream: session event %+v at %d, want a fresh one at 0", se, pos)
	}
	last := read(st, 1, 20)

	for _, how := range []string{"Last-Event-ID header", "lastEventId parameter"} {
		st.Close()
		// 40 ticks a second: some 20 events go by while nobody listens.
		time.Sleep(500 * time.Millisecond)
		var header http.Header
		u := url
		if how == "Last-Event-ID header" {
			header = http.Header{"Last-Event-ID": {fmt.Sprint(last)}}
		} else {
			u += fmt.Sprintf("&lastEventId=%d", last)
		}
		st = openStream(t, hc, u, header)
		se, pos := st.Session(t)
		if !se.Resumed || pos != last {
			t.Fatalf("resumed with the %s %d: session event %+v at %d, want resumed at %d", how, last, se, pos, last)
		}
		last = read(st, last+1, 40)
	}
	if n := srv.Hub.SessionCount(); n != 1 {
		t.Errorf("%d sessions on the server, want the one resumed", n)
	}
}

// TestNginxPingsKeepIdleStreamAlive sets nginx's proxy_read_timeout to 3 s
// and leaves a stream with nothing to say for longer than that. With pings
// more often than the timeout, the stream lives on: a chat sent after the
// wait arrives on the same connection. Without (the control), nginx cuts the
// stream at the timeout, which is what the pings are for.
func TestNginxPingsKeepIdleStreamAlive(t *testing.T) {
	t.Parallel()
	const readTimeout = 3 * time.Second
	t.Run("pings every second", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, broadcast.WithPingInterval(time.Second))
		ng := startNginx(t, srv.Addr, nginxTweaks{readTimeout: "3s"})
		hc := ssetest.Client(t)
		session := ssetest.NewSession(t, hc, ng.URL)
		st := openStream(t, hc, ng.URL+"/events?session="+session, nil)
		st.Session(t)
		time.Sleep(readTimeout + 2*time.Second)
		if st.Ended() {
			t.Fatalf("nginx cut the stream despite %d pings: %v\n%s", st.Pings(), st.Err(), ng.ErrorLog())
		}
		if p := st.Pings(); p < 3 {
			t.Errorf("%d pings in %v, want one a second", p, readTimeout+2*time.Second)
		}
		d := chatArrives(t, hc, ng.URL, session, "still here", st)
		t.Logf("after %v of silence but for %d pings, a chat arrived on the same connection in %v", readTimeout+2*time.Second, st.Pings(), d.Round(time.Microsecond))
	})
	t.Run("control: no ping within the timeout", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, broadcast.WithPingInterval(time.Minute))
		ng := startNginx(t, srv.Addr, nginxTweaks{readTimeout: "3s"})
		hc := ssetest.Client(t)
		session := ssetest.NewSession(t, hc, ng.URL)
		opened := time.Now()
		st := openStream(t, hc, ng.URL+"/events?session="+session, nil)
		st.Session(t)
		if !st.WaitEnd(ssetest.Wait) {
			t.Fatalf("nginx kept a silent stream open for %v with proxy_read_timeout 3s; the test above proves nothing", ssetest.Wait)
		}
		if log := ng.ErrorLog(); !strings.Contains(log, "upstream timed out") {
			t.Errorf("the stream ended (%v), but not by nginx's read timeout:\n%s", st.Err(), log)
		}
		t.Logf("without pings nginx cut the stream after %v", time.Since(opened).Round(time.Millisecond))
	})
}

// TestNginxHostKeepsThePort POSTs through nginx with the Origin a browser
// sends for a page it loaded through nginx. The server compares the Origin's
// host with the Host it receives; the example passes $http_host, port and
// all, so the POST is accepted. The control swaps in $host, which many
// guides write and which drops the port: then every POST from the page is
// refused as cross-site.
func TestNginxHostKeepsThePort(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		replace [][2]string
		want    int
	}{
		{"the example (http_host)", nil, http.StatusCreated},
		{"control: host without its port", [][2]string{{"proxy_set_header Host $http_host;", "proxy_set_header Host $host;"}}, http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t)
			ng := startNginx(t, srv.Addr, nginxTweaks{replace: tc.replace})
			browser := http.Header{"Origin": {ng.URL}, "Sec-Fetch-Site": {"same-origin"}}
			ctx, cancel := context.WithTimeout(context.Background(), ssetest.Wait)
			defer cancel()
			status, err := ssetest.PostJSON(ctx, ssetest.Client(t), ng.URL+"/sessions", browser, protocol.CreateSession{}, nil)
			if status != tc.want {
				t.Errorf("POST /sessions with Origin %s through nginx: %d (%v), want %d", ng.URL, status, err, tc.want)
			}
		})
	}
}
