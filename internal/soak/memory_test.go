package soak

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// liveHeap is the live heap after two collections: what the process holds.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func kib(n int64) string { return fmt.Sprintf("%.1f KiB", float64(n)/1024) }

// A counter reads one stream and counts its events; it is the well-behaved
// reader beside a stuck one. Its stream decodes one event ahead at most, so
// that what it holds does not weigh on the heap the test measures.
type counter struct {
	n    atomic.Int64
	done chan struct{} // closed when the counting goroutine returns
}

func startCounter(t *testing.T, hc *http.Client, url string) *counter {
	t.Helper()
	s := ssetest.Open(t, hc, url, nil, ssetest.MaxQueue(1))
	c := &counter{done: make(chan struct{})}
	// Runs in its own goroutine until the stream ends (closed at cleanup).
	go func() {
		defer close(c.done)
		for {
			_, err := s.Recv(ssetest.Wait)
			switch {
			case err == nil:
				c.n.Add(1)
			case !errors.Is(err, ssetest.ErrTimeout):
				return
			}
		}
	}()
	t.Cleanup(func() { s.Close(); <-c.done })
	return c
}

// TestStuckReaderMemory: a stream whose reader stops reading (its TCP window
// full), tuned to three channels of 300 ticks a second and with a 20 MiB
// transfer queued, costs the server no more than its replay buffer can hold
// (WithReplay caps it at 256 events here), however long it stays stuck: the
// live heap with it stuck for 3 s and for 9 s is within that bound of the
// heap before it came, and does not grow between the two. The readers beside
// it keep reading (TestStuckReader in pkg/server bounds their chat latency).
func TestStuckReaderMemory(t *testing.T) {
	const replay = 256
	srv := testserver.Start(t,
		broadcast.WithChannels(fastChannels(300)...),
		broadcast.WithReplay(replay, 0, replay),
		broadcast.WithWriteTimeout(time.Minute), // stuck for the whole test, not cut
	)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	ctx := setupCtx(t)
	session := func() string {
		var created protocol.SessionCreated
		if _, err := ssetest.PostJSON(ctx, hc, srv.URL+"/sessions", nil, protocol.CreateSession{Channels: allChannels}, &created); err != nil {
			t.Fatal(err)
		}
		return created.Session
	}
	var readers []*counter
	for range 3 {
		readers = append(readers, startCounter(t, hc, srv.URL+"/events?session="+session()))
	}
	time.Sleep(time.Second) // the readers' sessions fill their rings too
	before := liveHeap()

	stuck := session()
	// Closed before the server: its blocked write then fails at once.
	ssetest.StuckReader(t, srv.Addr, "/events?session="+stuck)
	ssetest.Eventually(t, "the stuck stream to open", func() bool { return srv.Hub.StreamCount() == 4 })
	if _, err := ssetest.PostJSON(ctx, hc, srv.URL+"/sessions/"+stuck+"/bulk", nil, protocol.BulkPost{Bytes: ptr(int64(20 << 20))}, nil); err != nil {
		t.Fatal(err)
	}
	deliveries := func() int64 {
		var n int64
		for _, v := range srv.Hub.Snapshot().TickDeliveries {
			n += v
		}
		return n
	}
	readCounts := func() (n int64) {
		for _, r := range readers {
			n += r.n.Load()
		}
		return n
	}

	time.Sleep(3 * time.Second)
	d1, r1 := deliveries(), readCounts()
	at3 := liveHeap()
	time.Sleep(6 * time.Second)
	d2, r2 := deliveries(), readCounts()
	at9 := liveHeap()

	snap := srv.Hub.Snapshot()
	if snap.Streams != 4 || snap.BulkDone != 0 {
		t.Fatalf("%d streams, %d transfers done: the stuck stream was not stuck", snap.Streams, snap.BulkDone)
	}
	if r2 <= r1 {
		t.Fatalf("the readers beside the stuck one read nothing in 6 s (%d then %d events)", r1, r2)
	}
	// Ticks published to the stuck session while it was stuck: what its
	// memory would hold without the cap (a quarter of the deliveries go to
	// it: it and three readers are tuned to everything).
	toStuck := (d2 - d1) / 4
	grow3, grow9 := int64(at3)-int64(before), int64(at9)-int64(before)
	// The bound: the ring of 256 events (a slot and the event with its
	// ~40-byte body each, shared with the other sessions or not) is a few
	// tens of KiB; the stream's write buffer (64 KiB batches) and one bulk
	// chunk (48 KiB raw, 64 KiB as base64) come on top. 1 MiB is generous.
	const bound = 1 << 20
	t.Logf("live heap: %s before the stuck reader; %+d bytes (%s) after 3 s stuck, %+d bytes (%s) after 9 s; %d ticks reached its session in the last 6 s (unbounded, ~%s at 100 B each); bound %s",
		kib(int64(before)), grow3, kib(grow3), grow9, kib(grow9), toStuck, kib(toStuck*100), kib(bound))
	if grow9 > bound {
		t.Errorf("the stuck reader grew the live heap by %s, more than %s", kib(grow9), kib(bound))
	}
	if grow9-grow3 > bound/4 {
		t.Errorf("the live heap grew by %s between 3 s and 9 s of being stuck: not bounded", kib(grow9-grow3))
	}
}

// TestIdleStreamsChat: 1,000 streams that are tuned to nothing (idle but for
// chat) and one chatter posting up to 20 chats a second for 5 s (each POST
// waits for the one before): every stream gets every chat, in order. The streams are read by a helper process (this test
// binary run again), so the live heap measured here is the server's alone;
// the test reports it per stream, idle and after the chats.
func TestIdleStreamsChat(t *testing.T) {
	const (
		streams = 1000
		rate    = 20
	)
	srv := testserver.Start(t, broadcast.WithChatRate(1000, 1000))
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: wait}
	before := liveHeap()
	goBefore := runtime.NumGoroutine()

	h := startHelper(t, srv.URL, streams)
	if err := h.expect("ready", 2*wait); err != nil {
		t.Fatal(err)
	}
	if n := srv.Hub.StreamCount(); n != streams {
		t.Fatalf("%d streams open, want %d", n, streams)
	}
	idle := liveHeap()
	goIdle := runtime.NumGoroutine()

	run := newSoakRun(gapsNever, false, wait, nil)
	ch := newRawClient("chatter", srv.URL, srv.URL, run, hc, hc, 0)
	if err := ch.open(setupCtx(t), nil); err != nil {
		t.Fatal(err)
	}
	// 20 chats a second offered for 5 s; each POST waits for the one before,
	// so a slow machine sends fewer, never more.
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	var wg sync.WaitGroup
	wg.Go(func() { run.chatLoop(ctx, ch.name, time.Second/rate, ch.say) })
	wg.Wait()
	cancel()
	ids, errs := run.acceptedIDs()
	if len(errs) > 0 {
		t.Fatalf("chatter: %v", errs)
	}
	if len(ids) < 10 {
		t.Fatalf("only %d chats went out in 5 s", len(ids))
	}
	posting := time.Since(start)
	if err := h.until(ids[len(ids)-1]); err != nil {
		t.Fatal(err)
	}
	after := liveHeap() // the streams are still open
	if n := srv.Hub.StreamCount(); n != streams {
		t.Fatalf("%d streams open after the chats, want %d", n, streams)
	}
	report, err := h.report()
	if err != nil {
		t.Fatal(err)
	}

	bad := 0
	for i, r := range report {
		if r.count != len(ids) || r.first != ids[0] || r.last != ids[len(ids)-1] || !r.ordered {
			if bad < 10 {
				t.Errorf("stream %d got %d chats (%d to %d, in order %v); want all %d, %d to %d", i, r.count, r.first, r.last, r.ordered, len(ids), ids[0], ids[len(ids)-1])
			}
			bad++
		}
	}
	if len(report) != streams || bad > 0 {
		t.Fatalf("%d of %d streams reported, %d incomplete", len(report), streams, bad)
	}
	idlePer := (int64(idle) - int64(before)) / streams
	afterPer := (int64(after) - int64(before)) / streams
	t.Logf("%d idle streams: live heap %s before, %s with them open (%s a stream, %.1f goroutines a stream); after %d chats in %v (%.1f/s), all delivered to every stream: %s (%s a stream)",
		streams, kib(int64(before)), kib(int64(idle)), kib(idlePer), float64(goIdle-goBefore)/streams,
		len(ids), posting.Round(time.Millisecond), float64(len(ids))/posting.Seconds(), kib(int64(after)), kib(afterPer))
	// A bound derived from the design, not a benchmark: an idle stream is a
	// session (a 16-slot ring), a stream (a 4 KiB buffer) and a connection
	// (net/http's 4 KiB read and write buffers); the chats add a slot per
	// chat to each ring and are shared. 64 KiB a stream is four times that.
	if afterPer > 64<<10 {
		t.Errorf("%s of live heap a stream: more than 64 KiB", kib(afterPer))
	}
}
