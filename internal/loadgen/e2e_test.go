package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/baseline"
	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// serve runs h on a free loopback port until the test ends; closing the
// server closes every stream before onClose runs.
func serve(t *testing.T, h http.Handler, onClose func()) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
		if onClose != nil {
			onClose()
		}
	})
	return "http://" + ln.Addr().String()
}

func startBaseline(t *testing.T, kind string) string {
	t.Helper()
	var (
		b   baseline.Server
		err error
	)
	switch kind {
	case "raw":
		b, err = baseline.NewRaw()
	case "r3labs":
		b, err = baseline.NewR3labs()
	}
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, b, b.Close)
}

// smallRun is the end-to-end configuration: 20 streams, 2 s, 5 chats a
// second from 5 sessions (each under xhrsse's per-session chat allowance).
func smallRun(url, label string) Config {
	return Config{URL: url, Label: label, Streams: 20, Duration: 2 * time.Second, ChatRate: 5, Concurrency: 8}
}

// checkHealthy asserts what every server must achieve with 20 streams.
func checkHealthy(t *testing.T, rep *Report) {
	t.Helper()
	var text strings.Builder
	rep.WriteText(&text)
	t.Logf("report:\n%s", text.String())
	if rep.Opened != 20 || rep.Held != 20 || rep.ConnectErrors != 0 || rep.Drops != 0 {
		t.Errorf("opened %d, held %d, connect errors %d (%s), drops %d: want 20, 20, 0, 0",
			rep.Opened, rep.Held, rep.ConnectErrors, rep.LastConnectError, rep.Drops)
	}
	if rep.Events <= 0 || rep.Ticks <= 0 || rep.Bytes <= 0 {
		t.Errorf("events %d, ticks %d, bytes %d: want some of each", rep.Events, rep.Ticks, rep.Bytes)
	}
	if rep.Chat.Sent == 0 || rep.Chat.Failed != 0 || rep.Chat.Latency.Count == 0 {
		t.Errorf("chat sent %d, failed %d (%s), latency samples %d: want sent, no failure, samples",
			rep.Chat.Sent, rep.Chat.Failed, rep.Chat.LastError, rep.Chat.Latency.Count)
	}
	if rep.Chat.Deliveries != rep.Chat.Expected || int64(rep.Chat.Latency.Count) != rep.Chat.Deliveries {
		t.Errorf("chat delivered %d of %d with %d latency samples: want all, one sample each",
			rep.Chat.Deliveries, rep.Chat.Expected, rep.Chat.Latency.Count)
	}
	if !rep.IDs.Clean() || rep.IDs.NoID != 0 {
		t.Errorf("ids: %+v, want clean", rep.IDs)
	}
}

func TestRunXhrsse(t *testing.T) {
	ts := testserver.Start(t)
	cfg := smallRun(ts.URL, "xhrsse")
	cfg.PID = os.Getpid() // the server runs in this process
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkHealthy(t, rep)
	if rep.Server == nil || rep.Server.RSSEndKiB <= 0 || rep.Server.PID != os.Getpid() {
		t.Errorf("server report %+v, want this process's figures", rep.Server)
	}
	if len(rep.Channels) != 3 || rep.TickRate <= 0 {
		t.Errorf("channels %v at %v ticks/s: want every channel of the server", rep.Channels, rep.TickRate)
	}
}

func TestRunRaw(t *testing.T) {
	rep, err := Run(context.Background(), smallRun(startBaseline(t, "raw"), "raw"))
	if err != nil {
		t.Fatal(err)
	}
	checkHealthy(t, rep)
}

func TestRunR3labs(t *testing.T) {
	rep, err := Run(context.Background(), smallRun(startBaseline(t, "r3labs"), "r3labs"))
	if err != nil {
		t.Fatal(err)
	}
	checkHealthy(t, rep)
}

func TestRunBulkSSE(t *testing.T) {
	ts := testserver.Start(t)
	rep, err := Run(context.Background(), Config{
		URL: ts.URL, Streams: 1, Duration: 2 * time.Second, BulkBytes: 300_000, BulkVia: BulkSSE,
	})
	if err != nil {
		t.Fatal(err)
	}
	b := rep.Bulk
	if b == nil || b.Transfers == 0 || b.Errors != 0 || b.Corrupt != 0 || b.Bytes != int64(b.Transfers)*300_000 || b.MBPerSec <= 0 {
		t.Errorf("bulk over SSE: %+v, want whole, intact transfers", b)
	}
}

func TestRunBulkGet(t *testing.T) {
	rep, err := Run(context.Background(), Config{
		URL: startBaseline(t, "raw"), Streams: 1, Duration: time.Second, BulkBytes: 300_000, BulkVia: BulkGet,
	})
	if err != nil {
		t.Fatal(err)
	}
	b := rep.Bulk
	if b == nil || b.Transfers == 0 || b.Errors != 0 || b.Corrupt != 0 || b.MBPerSec <= 0 {
		t.Errorf("bulk over GET: %+v, want whole transfers", b)
	}
}

func TestRunRefusesNonLoopback(t *testing.T) {
	for _, u := range []string{"http://10.1.2.3:8080", "http://example.com"} {
		if _, err := Run(context.Background(), Config{URL: u, Streams: 1, Duration: time.Second}); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("Run(%s) error = %v, want a loopback refusal", u, err)
		}
	}
}

// liar is a server whose streams number their events 1, 2, 4, 4, 3 (one
// hole, one duplicate, one reordering) and then either stay open or end.
func liar(t *testing.T, end bool) string {
	var n atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /channels", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `[{"name":"one","title":"x","rate":10,"repertoire":"ab","width":1}]`)
	})
	mux.HandleFunc("POST /sessions", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"session":"s%d","channels":["one"],"events":"/events?session=s%[1]d"}`, n.Add(1))
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		buf, _ := protocol.AppendEvent(nil, 0, protocol.EventSession, []byte(`{"session":"x","channels":["one"],"resumed":false}`))
		w.Write(buf)
		w.(http.Flusher).Flush()
		time.Sleep(200 * time.Millisecond) // after the ramp: inside the window
		buf = buf[:0]
		for _, id := range []uint64{1, 2, 4, 4, 3} {
			buf, _ = protocol.AppendEvent(buf, id, "one", []byte("a"))
		}
		w.Write(buf)
		w.(http.Flusher).Flush()
		if !end {
			<-r.Context().Done()
		}
	})
	return serve(t, mux, nil)
}

func TestRunDetectsBadIDs(t *testing.T) {
	rep, err := Run(context.Background(), Config{URL: liar(t, false), Streams: 3, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	want := IDStats{Gaps: 3, Missing: 3, Duplicates: 3, OutOfOrder: 3}
	if rep.IDs != want || rep.KeptUp {
		t.Errorf("ids %+v, kept up %v; want %+v, not kept up", rep.IDs, rep.KeptUp, want)
	}
	if rep.Ticks != 15 || rep.Drops != 0 {
		t.Errorf("ticks %d, drops %d: want 15, 0", rep.Ticks, rep.Drops)
	}
}

func TestRunDetectsDrops(t *testing.T) {
	rep, err := Run(context.Background(), Config{URL: liar(t, true), Streams: 3, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Drops != 3 || rep.Held != 0 || rep.DropReasons["closed by server"] != 3 || rep.KeptUp {
		t.Errorf("drops %d (%v), held %d, kept up %v: want 3 closed by server, 0 held", rep.Drops, rep.DropReasons, rep.Held, rep.KeptUp)
	}
}
