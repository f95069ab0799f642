package soak

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/ssetest"
)

// The broker faults: the cluster soak on three clustered brokers, every
// stream and bucket replicated on all three (docs/RELIABILITY.md, "A
// cluster of brokers"). Clients stream, tune, chat and transfer through the
// round-robin front throughout, with its random cuts; each fault's
// recovery (first event, first chat) is measured and logged.

// chatStream is the cluster's chat stream (pkg/cluster, default prefix).
const chatStream = "xhrsse_CHAT"

// TestSoakBrokerRestarts: one broker of three stops and comes back, then
// another: nothing is lost, no gap, every session stays where it is.
func TestSoakBrokerRestarts(t *testing.T) {
	runClusterSoak(t, clusterFault{name: "a broker restarted, twice", brokers: true, inject: func(t *testing.T, env *clusterEnv) {
		env.run.brokerLost.Store(true)
		for _, b := range env.brokers.All()[:2] {
			env.mark(fmt.Sprintf("broker %s stopped", b.Name()))
			b.Stop()
			time.Sleep(time.Second)
			env.mark(fmt.Sprintf("broker %s started", b.Name()))
			b.Start()
			env.brokers.WaitReady()
			time.Sleep(time.Second)
		}
	}})
}

// TestSoakBrokerKilled: broker b1, in a child process, dies with SIGKILL
// (no shutdown: the JetStream leaders it had do not step down, and the
// others elect new ones only after an election timeout), stays dead for 2 s
// and starts again on its port and store; twice. Nothing is lost, no gap.
func TestSoakBrokerKilled(t *testing.T) {
	runClusterSoak(t, clusterFault{name: "broker b1 killed (SIGKILL) and restarted, twice", brokers: true, killable: true, inject: func(t *testing.T, env *clusterEnv) {
		env.run.brokerLost.Store(true)
		b := env.brokers.All()[0]
		for i := range 2 {
			// Who led what, as far as b2 and b3 can tell: nobody means b1.
			led := func(stream string) string {
				if l := env.brokers.StreamLeader(stream); l != nil {
					return l.Name()
				}
				return b.Name() + " (or none)"
			}
			t.Logf("kill %d: chat stream led by %s, published stream by %s, sessions bucket by %s", i+1, led(chatStream), led(publishedStream), led(sessionsStream))
			env.mark(fmt.Sprintf("broker %s killed (%d)", b.Name(), i+1))
			b.Kill()
			time.Sleep(2 * time.Second)
			env.mark(fmt.Sprintf("broker %s started (%d)", b.Name(), i+1))
			b.Start()
			env.brokers.WaitReady()
			time.Sleep(time.Second)
		}
	}})
}

// TestSoakChatLeaderKilled: the broker leading the chat stream dies by
// SIGKILL and stays dead for 10 s: the worst case of a kill, which
// TestSoakBrokerKilled meets only when b1 happens to lead. No chat can be
// stored until the two others elect a leader (nats-server's election
// timeout, 4 to 9 s); ticks go on; nothing acknowledged is lost.
func TestSoakChatLeaderKilled(t *testing.T) {
	runClusterSoak(t, clusterFault{name: "the chat stream's leader killed (SIGKILL)", brokers: true, killable: true, inject: func(t *testing.T, env *clusterEnv) {
		env.run.brokerLost.Store(true)
		b := env.brokers.All()[0]
		env.brokers.MoveLeader(chatStream, b)
		env.mark(fmt.Sprintf("broker %s, the chat stream's leader, killed", b.Name()))
		b.Kill()
		time.Sleep(10 * time.Second)
		if l := env.brokers.StreamLeader(chatStream); l != nil {
			t.Logf("chat stream led by %s after the kill", l.Name())
		}
		env.mark(fmt.Sprintf("broker %s started", b.Name()))
		b.Start()
		env.brokers.WaitReady()
	}})
}

// sessionsStream is the stream under the cluster's sessions bucket.
const sessionsStream = "KV_xhrsse_sessions"

// TestSoakNodesBrokerKilled: the broker node a is connected to dies; node a
// goes on through another.
func TestSoakNodesBrokerKilled(t *testing.T) {
	runClusterSoak(t, clusterFault{name: "node a's broker killed", brokers: true, inject: func(t *testing.T, env *clusterEnv) {
		env.run.brokerLost.Store(true)
		b := env.brokers.BrokerOf(env.nodes[0])
		if b == nil {
			t.Fatal("node a is connected to no broker")
		}
		env.mark(fmt.Sprintf("broker %s (node a's) stopped", b.Name()))
		b.Stop()
		ssetest.Eventually(t, "node a on another broker", func() bool {
			o := env.brokers.BrokerOf(env.nodes[0])
			return o != nil && o != b
		})
		t.Logf("node a moved to broker %s", env.brokers.BrokerOf(env.nodes[0]).Name())
		time.Sleep(2 * time.Second)
		b.Start()
		env.brokers.WaitReady()
	}})
}

// TestSoakChatLeaderChange: the chat stream's JetStream leader steps down
// in the middle of a burst of chat: every chat accepted arrives once.
func TestSoakChatLeaderChange(t *testing.T) {
	runClusterSoak(t, clusterFault{name: "the chat stream's leader changed in a chat burst", brokers: true, inject: func(t *testing.T, env *clusterEnv) {
		env.run.brokerLost.Store(true)
		// The burst: one session chatting as fast as its POSTs are
		// answered, besides everybody's chat.
		say := env.crowd.raws[0].say
		until := time.Now().Add(10 * time.Second) // bounded, should chat stall
		burst := func(from, to int) {
			for i := from; i < to && time.Now().Before(until); i++ {
				text := fmt.Sprintf("burst #%d", i)
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				st, id, err := say(ctx, text)
				cancel()
				env.run.chatted("burst", text, st, id, err)
			}
		}
		done := make(chan struct{})
		env.bg.Go(func() {
			defer close(done)
			burst(0, 150)
		})
		time.Sleep(100 * time.Millisecond)
		env.mark("the chat stream's leader stepped down")
		from, to := env.brokers.StepDown(chatStream)
		t.Logf("chat stream leader %s → %s", from, to)
		<-done
	}})
}

// publishedStream is the cluster's stream of published events.
const publishedStream = "xhrsse_PUBLISHED"

// TestSoakPublishedLeaderChange: the published events' stream's JetStream
// leader steps down in the middle of a burst of publishing: every event
// acknowledged arrives once, in order, on every node.
func TestSoakPublishedLeaderChange(t *testing.T) {
	runClusterSoak(t, clusterFault{name: "the published stream's leader changed in a publish burst", brokers: true, inject: func(t *testing.T, env *clusterEnv) {
		env.run.brokerLost.Store(true)
		// The burst: a publisher sending as fast as it is answered, to
		// each node in turn, besides the soak's publishers, from 1 s
		// before the step-down to 3 s after.
		hc := &http.Client{Transport: &http.Transport{}, Timeout: wait}
		defer hc.CloseIdleConnections()
		urls := env.nodeURLs()
		stop, done := make(chan struct{}), make(chan struct{})
		var took []time.Duration // each publish's; read after done
		start := time.Now()
		env.bg.Go(func() {
			defer close(done)
			for i := 0; !isClosed(stop); i++ {
				t0 := time.Now()
				_ = env.run.publishJSON(hc, urls[i%len(urls)], "burst", fmt.Sprintf("burst#%d", i))
				took = append(took, time.Since(t0))
			}
		})
		time.Sleep(time.Second)
		env.mark("the published stream's leader stepped down")
		from, to := env.brokers.StepDown(publishedStream)
		t.Logf("published stream leader %s → %s", from, to)
		time.Sleep(3 * time.Second)
		close(stop)
		<-done
		slices.Sort(took)
		t.Logf("the burst: %d publishes in %v, median %v, slowest %v", len(took), time.Since(start).Round(time.Millisecond),
			took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
	}})
}

// pkg/cluster's messages when a node without a broker parks its sessions,
// and when, back, it lets one go that another node recovered.
const (
	msgParked = "no broker: sessions parked until one is back"
	msgLetGo  = "session recovered elsewhere while this node had no broker: let go"
)

// TestSoakNodePartitioned: node c loses every broker (the proxy between
// them goes down) while its clients can still reach it, and gets them back
// 3 s later. Past three quarters of Claim it parks its sessions (their streams end);
// their clients come back on the other nodes, which recover the sessions
// after a gap, as after a crash; those still recorded as c's go home to c
// when it is back. No session is on two nodes at any time.
func TestSoakNodePartitioned(t *testing.T) {
	runClusterSoak(t, clusterFault{name: "node c cut off from every broker", brokers: true, linked: true, inject: func(t *testing.T, env *clusterEnv) {
		env.run.brokerLost.Store(true)
		env.run.killed.Store(time.Now().UnixNano())
		env.mark("node c cut off")
		env.link.Down()
		time.Sleep(3 * time.Second)
		env.mark("node c back")
		if err := env.link.Up(); err != nil {
			t.Fatal(err)
		}
		ssetest.Eventually(t, "node c on a broker again", func() bool { return env.brokers.BrokerOf(env.nodes[2]) != nil })
	}, check: func(t *testing.T, env *clusterEnv) {
		if env.logs.get(msgParked) == 0 {
			t.Error("node c parked no session")
		}
		t.Logf("node c: sessions parked %d times; sessions let go once back, recovered elsewhere: %d", env.logs.get(msgParked), env.logs.get(msgLetGo))
	}})
}

// linkStallFor is how long node c's connections to the brokers stay
// silent in TestSoakPartitionUnnoticed before the proxy resets them: longer
// than node c takes to notice by its pings (pkg/cluster), and than the
// brokers take to drop them by theirs (clustertest: two pings 2 s apart).
const linkStallFor = 8 * time.Second

// TestSoakPartitionUnnoticed: every connection between node c and the
// brokers goes silent (nothing relayed either way, no FIN, no RST: a
// partition that TCP does not notice) for linkStallFor, while new
// connections get through.
// Node c notices by its pings, gives the connection up and connects again;
// nothing is lost or doubled and no session ends up on two nodes.
func TestSoakPartitionUnnoticed(t *testing.T) {
	runClusterSoak(t, clusterFault{name: "node c's broker connections silent", brokers: true, linked: true, inject: func(t *testing.T, env *clusterEnv) {
		env.run.brokerLost.Store(true)
		env.mark("node c's broker connections stalled")
		t.Logf("connections stalled: %d", env.link.CutAll(CutStall))
		stalled := time.Now()
		ssetest.Eventually(t, "node c connected again through a new connection", func() bool { return env.link.Conns() > 1 })
		t.Logf("node c connected again %v after the stall", time.Since(stalled).Round(time.Millisecond))
		time.Sleep(time.Until(stalled.Add(linkStallFor)))
		env.mark("node c's stalled connections reset")
	}})
}
