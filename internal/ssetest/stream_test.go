package ssetest_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sseServer serves, at /events, a retry line, a session event, a ping, n
// ticks with consecutive ids and, unless hold is set, the end of the stream;
// with hold it stays open until the client goes. Any other path answers 404
// with a JSON error.
func sseServer(t *testing.T, h2 bool, n int, hold bool) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		b := protocol.AppendRetry(nil, 2000)
		b, _ = protocol.AppendEvent(b, 0, protocol.EventSession, []byte(`{"session":"s1","resumed":false}`))
		b = protocol.AppendComment(b, "ping")
		for i := range n {
			b, _ = protocol.AppendEvent(b, uint64(i+1), "one", []byte(fmt.Sprint("x", i)))
		}
		w.Write(b)
		rc.Flush()
		if hold {
			<-r.Context().Done()
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":"no such thing"}`)
	})
	srv := httptest.NewUnstartedServer(mux)
	if h2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

func client(t *testing.T, srv *httptest.Server) *http.Client {
	hc := srv.Client()
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

// TestStreamReadsOneConnection: over HTTP/1.1, HTTP/2 and through a
// reverse proxy, a stream gives the session event, the ticks in order with
// their ids, counts the ping the decoder skips, keeps the preamble, and ends
// cleanly with the body.
func TestStreamReadsOneConnection(t *testing.T) {
	for _, tc := range []struct {
		name        string
		h2, proxied bool
	}{{"HTTP/1.1", false, false}, {"HTTP/2", true, false}, {"proxy", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			h2 := tc.h2
			srv := sseServer(t, h2, 5, false)
			url, hc := srv.URL, client(t, srv)
			if tc.proxied {
				target, _ := neturl.Parse(srv.URL)
				rp := httputil.NewSingleHostReverseProxy(target)
				rp.FlushInterval = -1 // as nginx with X-Accel-Buffering: no
				proxy := httptest.NewServer(rp)
				t.Cleanup(proxy.Close)
				url, hc = proxy.URL, client(t, proxy)
			}
			s := ssetest.Open(t, hc, url+"/events", nil)
			if got := s.Response.ProtoMajor == 2; got != h2 {
				t.Fatalf("HTTP/2 %v, want %v", got, h2)
			}
			se, pos := s.Session(t)
			if se.Session != "s1" || se.Resumed || pos != 0 || s.Retry() != 2000 {
				t.Fatalf("session event %+v at %d, retry %d", se, pos, s.Retry())
			}
			third, before := s.Until(t, "x2", func(m protocol.Message) bool { return m.Data == "x2" })
			ssetest.Consecutive(t, 1, append(before, third))
			rest := s.End(t)
			if len(rest) != 2 || rest[1].Data != "x4" {
				t.Fatalf("after x2: %v", rest)
			}
			if p := s.Pings(); p != 1 {
				t.Errorf("%d pings, want 1", p)
			}
			if head := string(s.Head()); !strings.HasPrefix(head, "retry: 2000\n") {
				t.Errorf("head %q", head)
			}
			if !s.Ended() || !errors.Is(s.Err(), io.EOF) {
				t.Errorf("ended %v with %v, want io.EOF", s.Ended(), s.Err())
			}
		})
	}
}

// TestStreamTimesOut: with nothing more to read from an open connection,
// Recv says so in time, and Cut ends the stream with the cause given.
func TestStreamTimesOut(t *testing.T) {
	srv := sseServer(t, false, 0, true)
	s := ssetest.Open(t, client(t, srv), srv.URL+"/events", nil)
	s.Session(t)
	if _, err := s.Recv(50 * time.Millisecond); !errors.Is(err, ssetest.ErrTimeout) {
		t.Fatalf("Recv on a silent stream: %v, want ErrTimeout", err)
	}
	if s.WaitEnd(50 * time.Millisecond) {
		t.Fatal("the stream ended by itself")
	}
	cause := errors.New("enough")
	s.Cut(cause)
	if _, err := s.Recv(ssetest.Wait); !errors.Is(err, cause) {
		t.Fatalf("Recv after Cut: %v, want the cause", err)
	}
	s.Close() // again: a no-op
}

// TestStreamIdle: a stream opened with Idle ends by itself with ErrIdle
// when nothing comes for that long.
func TestStreamIdle(t *testing.T) {
	srv := sseServer(t, false, 0, true)
	s := ssetest.Open(t, client(t, srv), srv.URL+"/events", nil, ssetest.Idle(100*time.Millisecond))
	if !s.WaitEnd(ssetest.Wait) {
		t.Fatal("an idle stream did not end")
	}
	if !errors.Is(s.Err(), ssetest.ErrIdle) {
		t.Fatalf("ended with %v, want ErrIdle", s.Err())
	}
}

// TestStreamMaxQueue: a bounded stream stops decoding while its queue is
// full and loses nothing.
func TestStreamMaxQueue(t *testing.T) {
	srv := sseServer(t, false, 50, false)
	s := ssetest.Open(t, client(t, srv), srv.URL+"/events", nil, ssetest.MaxQueue(2))
	s.Session(t)
	// The reader waits for room, so the stream cannot have ended yet.
	if s.WaitEnd(100 * time.Millisecond) {
		t.Fatal("the stream ended with 50 events untaken and a queue of 2")
	}
	if rest := s.End(t); len(rest) != 50 {
		t.Fatalf("%d events, want 50", len(rest))
	} else {
		ssetest.Consecutive(t, 1, rest)
	}
}

// TestTryOpenRefusal: an answer other than 200 comes back whole.
func TestTryOpenRefusal(t *testing.T) {
	srv := sseServer(t, false, 0, false)
	s, r := ssetest.TryOpen(t, client(t, srv), srv.URL+"/nope", nil)
	if s != nil {
		t.Fatal("a stream from a 404")
	}
	ssetest.WantError(t, "GET /nope", r, http.StatusNotFound)
}

// TestParseChunk: the quick path and the general one agree.
func TestParseChunk(t *testing.T) {
	quick, err := ssetest.ParseChunk(`{"transfer":"t1","seq":2,"chunks":3,"data":"aGVsbG8="}`)
	if err != nil || quick.Transfer != "t1" || quick.Seq != 2 || quick.Chunks != 3 || string(quick.Data) != "hello" {
		t.Fatalf("quick path: %+v %v", quick, err)
	}
	slow, err := ssetest.ParseChunk(`{"data":"aGVsbG8=","transfer":"t1","seq":2,"chunks":3}`)
	if err != nil || string(slow.Data) != "hello" || slow.Seq != 2 {
		t.Fatalf("general path: %+v %v", slow, err)
	}
	for _, bad := range []string{
		`{"transfer":"t1","seq":2,"chunks":3,"data":"not base64!"}`,
		`{"transfer":"t1","seq":2,"extra":1,"data":"aGVsbG8="}`,
		`{"transfer":"t1"} {}`,
	} {
		if _, err := ssetest.ParseChunk(bad); err == nil {
			t.Errorf("ParseChunk(%s): no error", bad)
		}
	}
}

// TestMetric reads a gauge among others, and only the one named.
func TestMetric(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "# HELP xhrsse_streams_total x\nxhrsse_streams_total 9\nxhrsse_streams 3\n")
	}))
	t.Cleanup(srv.Close)
	if got := ssetest.Metric(t, client(t, srv), srv.URL, "xhrsse_streams"); got != 3 {
		t.Fatalf("xhrsse_streams %v, want 3", got)
	}
}
