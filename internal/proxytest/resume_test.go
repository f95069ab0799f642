package proxytest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/soak"
	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/client"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// TestResumeThroughCuttingProxies puts pkg/client behind a proxy that cuts
// its connections, for ten seconds of ticks and chat, and checks that every
// cut was survived without loss: the client resumes each time with
// Last-Event-ID and ends with every event id of its session in order, no
// duplicates, and any loss announced by a gap (with the server's default
// replay window there should be none). Every chat accepted meanwhile
// arrived exactly once, and the ticks are the very characters a client
// straight on the server saw.
//
// The idle cutter is an idle timeout shorter than the server's ping
// interval, with ticks sparse enough to leave silences: cuts really happen.
// The lifetime cutter closes every connection 1.5 seconds after it opened,
// however busy.
func TestResumeThroughCuttingProxies(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		idle, life time.Duration
		tickRate   float64       // channel one, ticks a second
		ping       time.Duration // the server's ping interval
		chatEvery  time.Duration // a burst of chat this often
		burst      int           // messages per burst
	}{
		{name: "idle connections cut after 1s", idle: time.Second, tickRate: 0.4, ping: 5 * time.Second, chatEvery: 3 * time.Second, burst: 3},
		{name: "every connection closed after 1.5s", life: 1500 * time.Millisecond, tickRate: 20, ping: protocol.PingInterval, chatEvery: 500 * time.Millisecond, burst: 1},
	}
	const runFor = 10 * time.Second
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := testserver.Start(t, channelsAt(t, tc.tickRate, 40, 40), broadcast.WithPingInterval(tc.ping))
			// Each cut resets both sides, without a word to either.
			proxy := soak.StartProxy(t, []string{srv.Addr}, soak.WithIdleCut(tc.idle), soak.WithLifetime(tc.life))
			ctx, cancel := context.WithTimeout(context.Background(), 2*ssetest.Wait)
			defer cancel()

			// The reference: straight to the server, tuned in first.
			direct := newClient(t, srv.URL, ssetest.Client(t))
			refSession, err := direct.Open(ctx, "one")
			if err != nil {
				t.Fatal(err)
			}
			ref := startRun(t, refSession)
			ref.wait(t, 0, ssetest.Wait, "the reference connected", func(ev client.Event) bool { return ev.Kind == client.State && ev.State == client.Connected })

			// The listener, everything through the proxy.
			c := newClient(t, proxy.URL(), ssetest.Client(t))
			s, err := c.Open(ctx, "one")
			if err != nil {
				t.Fatal(err)
			}
			r := startRun(t, s)

			// The talker chats straight to the server: the test is about
			// the stream, and a POST cut by the proxy would be a client's
			// retry to make, not the protocol's.
			talker := newClient(t, srv.URL, ssetest.Client(t))
			ts, err := talker.Open(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var accepted []int64
			for start := time.Now(); time.Since(start) < runFor; time.Sleep(tc.chatEvery) {
				for range tc.burst {
					id, err := ts.Chat(ctx, "talker", fmt.Sprintf("message %d", len(accepted)))
					if err != nil {
						t.Fatalf("chat: %v", err)
					}
					accepted = append(accepted, id)
				}
			}
			last := accepted[len(accepted)-1]
			r.wait(t, 0, ssetest.Wait, fmt.Sprintf("chat %d, the last", last), func(ev client.Event) bool {
				return ev.Kind == client.Chat && ev.Chat.ID == last
			})
			if err := r.stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}

			events := r.events()
			checkIDs(t, events)
			st := s.Stats()
			if st.Duplicates != 0 {
				t.Errorf("the server sent %d events again that the client had", st.Duplicates)
			}
			if st.Gaps != 0 {
				t.Errorf("%d gaps (%d events missed) with the default replay window", st.Gaps, st.Missed)
			}
			if proxy.Timeouts() < 2 || st.Resumes < 2 {
				t.Errorf("%d cuts and %d resumes in %v; the test needs a few of each", proxy.Timeouts(), st.Resumes, runFor)
			}

			seen := make(map[int64]int)
			var ticks strings.Builder
			for _, ev := range events {
				switch {
				case ev.Kind == client.Chat:
					seen[ev.Chat.ID]++
				case ev.Kind == client.Tick && ev.Channel == "one":
					ticks.WriteString(ev.Text)
				}
			}
			for _, id := range accepted {
				if seen[id] != 1 {
					t.Errorf("chat %d arrived %d times, want once", id, seen[id])
				}
			}
			// The reference saw every tick; the listener's are a stretch of
			// them, in the same order, with nothing missing.
			ssetest.Eventually(t, "the listener's ticks to be a stretch of the reference's", func() error {
				var all strings.Builder
				for _, ev := range ref.events() {
					if ev.Kind == client.Tick && ev.Channel == "one" {
						all.WriteString(ev.Text)
					}
				}
				if !strings.Contains(all.String(), ticks.String()) {
					return fmt.Errorf("the listener's ticks %q are not a stretch of the reference's %q", ticks.String(), all.String())
				}
				return nil
			})
			if ticks.Len() == 0 {
				t.Error("the listener got no tick")
			}
			t.Logf("%d connections, %d cut, %d resumes; %d events (%d chats, %d ticks of one), ids 1..%d without a hole",
				proxy.Conns(), proxy.Timeouts(), st.Resumes, st.Events, len(accepted), len([]rune(ticks.String())), s.LastEventID())
		})
	}
}

// checkIDs fails the test unless the ids of the events (State events aside)
// go 1, 2, 3, … in order, each once, except where a gap event says which
// ids were lost: a gap with id G and missed M stands for G-M+1 to G.
func checkIDs(t *testing.T, events []client.Event) {
	t.Helper()
	next := uint64(1)
	for _, ev := range events {
		if ev.Kind == client.State || ev.Kind == client.Bye || ev.ID == 0 {
			// Not part of the session's history: connection changes, bye,
			// and the client's own notices (a transfer failed by a gap).
			continue
		}
		if ev.Kind == client.Gap {
			if first := ev.ID - ev.Gap.Missed + 1; first != next {
				t.Errorf("gap covers ids %d to %d, want it to start at %d", first, ev.ID, next)
			}
			next = ev.ID + 1
			continue
		}
		if ev.ID != next {
			t.Errorf("%s event with id %d, want %d", ev.Kind, ev.ID, next)
			if ev.ID < next {
				continue
			}
		}
		next = ev.ID + 1
	}
}
