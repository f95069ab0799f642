package loadgen

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"
)

// tcpPair is a connected pair of loopback TCP connections.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestPollerReadsEveryStream: streams whose events arrive in pieces, cut
// anywhere, some writes larger than a stream's buffer, with pauses between
// them, are each read whole by one poller; a stream the server closes ends
// as a drop, and the others are still held when the run ends.
func TestPollerReadsEveryStream(t *testing.T) {
	const streams, ticks = 5, 3000
	body := chunkedBody(tickEvents(ticks), 7)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	polls := &pollers{}
	p, err := newPoller()
	if err != nil {
		t.Fatal(err)
	}
	polls.all = append(polls.all, p)
	defer polls.close()
	wg.Go(func() {
		if err := p.run(ctx); err != nil {
			t.Error(err)
		}
	})

	var (
		all     []*stream
		servers []net.Conn
	)
	for range streams {
		client, server := tcpPair(t)
		fd, err := detach(client)
		if err != nil {
			t.Fatal(err)
		}
		st := &stream{src: &fdReader{fd: fd}}
		st.reader = newEventReader(st.src, nil, true, maxLine, &st.bytes)
		st.ids.position(0)
		if err := polls.hold(ctx, st); err != nil {
			t.Fatal(err)
		}
		all, servers = append(all, st), append(servers, server)
	}
	var writers sync.WaitGroup
	for i, server := range servers {
		writers.Go(func() {
			rest := body[:len(body)-5] // all but the last chunk
			for k := 0; len(rest) > 0; k++ {
				n := min(len(rest), 1+(k*131+i*17)%(3*minRead))
				if _, err := server.Write(rest[:n]); err != nil {
					t.Error(err)
					return
				}
				rest = rest[n:]
				if k%8 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	writers.Wait()
	servers[0].Close()
	deadline := time.Now().Add(30 * time.Second)
	for !all[0].ended.Load() || all[streams-1].ticks.Load() < ticks {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: stream 0 ended %v, last stream %d ticks of %d", all[0].ended.Load(), all[streams-1].ticks.Load(), ticks)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range streams {
		for all[i].ticks.Load() < ticks && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	stop()
	wg.Wait()
	for i, st := range all {
		st.close()
		if got := st.ticks.Load(); got != ticks || !st.ids.stats.Clean() || st.ids.stats.NoID != 0 {
			t.Errorf("stream %d: %d ticks, ids %+v; want %d, clean", i, got, st.ids.stats, ticks)
		}
		wantEnd := ""
		if i == 0 {
			wantEnd = "closed by server"
		}
		if st.endReason != wantEnd || st.ended.Load() != (i == 0) {
			t.Errorf("stream %d: ended %v (%q), want %q", i, st.ended.Load(), st.endReason, wantEnd)
		}
	}
}
