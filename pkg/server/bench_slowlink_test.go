package server_test

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/soak"
	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// BenchmarkChatBehindBulk measures what TestLiveEventsOvertakeBulk bounds,
// in time: a client on a slow link (the suite's proxy, at each rate, its
// upstream side reading through a 64 KiB receive buffer) asks for a 20 MB
// transfer, and 1.5 s later another client posts 10 chats, one every
// 400 ms, straight to the server; each chat's latency runs from its POST
// until it shows up on the slow stream. Reported: p50 and max in ms, and
// the bulk bytes the slow stream received meanwhile (MB/s), over HTTP/1.1
// and HTTP/2. One iteration is one such run (make bench-hol).
//
// With XHRSSE_HOL_URL set (http://host:port of a running server, which
// scripts/bench-hol.sh starts in a network namespace behind a veth pair
// shaped by tc tbf), it measures that server over its real link instead,
// HTTP/1.1 only.
func BenchmarkChatBehindBulk(b *testing.B) {
	if url := os.Getenv("XHRSSE_HOL_URL"); url != "" {
		b.Run("shaped/h1", func(b *testing.B) {
			runChatBehindBulk(b, func(b *testing.B) ([]time.Duration, float64) { return chatBehindBulkAt(b, url) })
		})
		return
	}
	for _, rate := range []int{250_000, 1_000_000, 10_000_000} {
		for _, h2 := range []bool{false, true} {
			proto := "h1"
			if h2 {
				proto = "h2"
			}
			b.Run(fmt.Sprintf("%dkBps/%s", rate/1000, proto), func(b *testing.B) {
				runChatBehindBulk(b, func(b *testing.B) ([]time.Duration, float64) { return chatBehindBulk(b, rate, h2) })
			})
		}
	}
}

// runChatBehindBulk runs one each iteration and reports the latencies'
// p50 and max and the mean bulk rate.
func runChatBehindBulk(b *testing.B, one func(*testing.B) ([]time.Duration, float64)) {
	var lat []time.Duration
	var mbps float64
	for b.Loop() {
		l, r := one(b)
		lat = append(lat, l...)
		mbps += r
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/1e6, "max-ms")
	b.ReportMetric(mbps/float64(b.N), "bulk-MB/s")
}

// chatBehindBulk is one run of BenchmarkChatBehindBulk: the latencies of
// its chats and the slow stream's bulk rate while they were posted.
func chatBehindBulk(b *testing.B, rate int, h2 bool) ([]time.Duration, float64) {
	opts := []broadcast.Option{broadcast.WithChannels(fastChannels(5)...)}
	var srv *testserver.Server
	if h2 {
		srv = testserver.StartTLS(b, testserver.Config{}, opts...)
	} else {
		srv = testserver.Start(b, opts...)
	}
	defer srv.Close()
	hc := srv.Client()
	defer hc.CloseIdleConnections()
	direct := &harness{srv: srv, hc: hc}
	p, err := soak.NewProxy([]string{srv.Addr}, soak.WithDownRate(rate), soak.WithUpstreamBuffer(slowBuffer))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	base := strings.Replace(srv.URL, srv.Addr, strings.TrimPrefix(p.URL(), "http://"), 1)

	return chatsBehind(b, direct, base, h2)
}

// chatBehindBulkAt is one run against a running server at url, its stream
// and its posts alike over the server's own (shaped) link.
func chatBehindBulkAt(b *testing.B, url string) ([]time.Duration, float64) {
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	return chatsBehind(b, &harness{srv: &testserver.Server{URL: url}, hc: hc}, url, false)
}

// chatsBehind is the measurement itself: direct posts, the stream from
// base.
func chatsBehind(b *testing.B, direct *harness, base string, h2 bool) ([]time.Duration, float64) {
	hc := direct.hc
	var channels []string
	for _, c := range broadcast.DefaultChannels() {
		channels = append(channels, c.Name)
	}
	sid := direct.newSession(b, channels...)
	direct.bulk(b, sid, `{"bytes":20000000}`)
	log := openLog(b, hc, base+"/events?session="+sid, h2)
	time.Sleep(1500 * time.Millisecond)

	from := log.len()
	start := time.Now()
	var lat []time.Duration
	for range 10 {
		sent, i := time.Now(), log.len()
		id := direct.chat(b, sid, "fast", "behind a transfer")
		at := log.waitFor(b, "the chat", i, func(m protocol.Message) bool { return isChat(m, id) })
		lat = append(lat, log.arrival(at).Sub(sent))
		if d := 400*time.Millisecond - time.Since(sent); d > 0 {
			time.Sleep(d)
		}
	}
	chunks := log.countIn(from, log.len(), protocol.EventBulk)
	return lat, float64(chunks) * protocol.BulkChunkSize / 1e6 / time.Since(start).Seconds()
}
