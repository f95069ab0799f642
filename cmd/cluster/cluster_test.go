package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// TestLaunch runs a three-node cluster in this process: every node answers
// on its own, the proxy spreads requests over all of them, a chat POSTed
// through the proxy reaches streams opened through the proxy on every node,
// the proxy skips a killed node, and stop leaves no process or port behind.
func TestLaunch(t *testing.T) {
	cfg := testConfig(t, 3)
	cfg.monitor = "127.0.0.1:0"
	c, err := launch(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.stop() })
	cl := newClient(t)
	before := brokerStats(t, cl, c.broker.monitor)

	for _, n := range c.nodes {
		status, node, body := cl.get(n.url + "/healthz")
		if status != http.StatusOK || node != n.name || strings.TrimSpace(body) != "ok" {
			t.Errorf("%s/healthz: %d from %q, %q; want 200 from %s, ok", n.url, status, node, body, n.name)
		}
	}

	seen := map[string]int{}
	for range 2 * len(c.nodes) {
		status, node, _ := cl.get(c.proxyURL + "/healthz")
		if status != http.StatusOK {
			t.Fatalf("proxy /healthz: %d", status)
		}
		seen[node]++
	}
	for _, n := range c.nodes {
		if seen[n.name] != 2 {
			t.Errorf("6 requests through the proxy reached %v: want each of the 3 nodes twice", seen)
			break
		}
	}

	// A session is created by one node and streamed by the next: requests
	// alternate, so three sessions' streams sit on three different nodes.
	var (
		sessions []string
		streams  []*events
		on       = map[string]bool{}
	)
	for range len(c.nodes) {
		var created protocol.SessionCreated
		if status, _ := cl.post(c.proxyURL+"/sessions", protocol.CreateSession{Channels: []string{}}, &created); status != http.StatusCreated {
			t.Fatalf("POST /sessions through the proxy: %d", status)
		}
		ev := cl.open(c.proxyURL, created.Session)
		sessions = append(sessions, created.Session)
		streams = append(streams, ev)
		on[ev.node] = true
	}
	if len(on) != len(c.nodes) {
		t.Fatalf("streams on nodes %v: want one on each of %d", on, len(c.nodes))
	}
	for i, s := range sessions {
		text := fmt.Sprintf("hello from session %d", i)
		status, node := cl.post(c.proxyURL+"/sessions/"+s+"/chat", protocol.ChatPost{Name: "test", Text: text}, nil)
		if status != http.StatusAccepted {
			t.Fatalf("chat POST through the proxy (to %s): %d", node, status)
		}
		for _, ev := range streams {
			ev.waitChat(t, text)
		}
	}

	// The chats crossed the broker: its monitoring counts them.
	if after := brokerStats(t, cl, c.broker.monitor); after.InMsgs < before.InMsgs+int64(len(sessions)) ||
		after.OutMsgs <= before.OutMsgs {
		t.Errorf("broker messages in %d → %d, out %d → %d: want at least the %d chats in, some out",
			before.InMsgs, after.InMsgs, before.OutMsgs, after.OutMsgs, len(sessions))
	}

	victim := c.nodeByName("node1")
	c.killLater("node1", time.Millisecond)
	select {
	case <-victim.exited:
	case <-time.After(wait):
		t.Fatal("node1 still runs after killLater")
	}
	for range 2 * len(c.nodes) {
		status, node, _ := cl.get(c.proxyURL + "/healthz")
		if status != http.StatusOK || node == "node1" || node == "" {
			t.Errorf("proxy /healthz with node1 dead: %d from %q; want 200 from another node", status, node)
		}
	}

	var pids []int
	for _, n := range c.nodes {
		pids = append(pids, n.cmd.Process.Pid)
	}
	brokerURL := c.broker.url()
	if err := c.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	for i, pid := range pids {
		if !gone(pid) {
			t.Errorf("node%d (pid %d) still exists after stop", i+1, pid)
		}
	}
	for _, u := range []string{c.proxyURL, brokerURL} {
		if !refused(u) {
			t.Errorf("%s still accepts connections after stop", u)
		}
	}
}

// TestLaunchFailsCleanly: a node that cannot start fails the launch with
// its reason, and the broker it would have joined is gone again.
func TestLaunchFailsCleanly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	natsAddr := ln.Addr().String()
	ln.Close()
	cfg := testConfig(t, 2)
	cfg.natsAddr = natsAddr
	cfg.nodeArgs = []string{"-no-such-flag"}
	c, err := launch(context.Background(), cfg)
	if err == nil {
		c.stop()
		t.Fatal("launch with a flag the server refuses: no error")
	}
	if !strings.Contains(err.Error(), "node1: exited before it listened") {
		t.Errorf("error %q: want node1's exit named", err)
	}
	if !refused("nats://" + natsAddr) {
		t.Errorf("the broker on %s outlived the failed launch", natsAddr)
	}
}

// TestLaunchNeedsANode refuses a cluster of no node before starting anything.
func TestLaunchNeedsANode(t *testing.T) {
	if _, err := launch(context.Background(), config{nodes: 0}); err == nil {
		t.Error("launch of 0 nodes: no error")
	}
}

// TestLaunchThreeBrokers: with -brokers 3 the brokers form one JetStream
// cluster, the nodes get all three URLs, and the stream and buckets the
// nodes make are on all three (R3); one broker stopping leaves the cluster
// working.
func TestLaunchThreeBrokers(t *testing.T) {
	cfg := testConfig(t, 2)
	cfg.brokers = 3
	c, err := launch(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.stop() })
	if len(c.brokers) != 3 || strings.Count(c.natsURL(), "nats://") != 3 {
		t.Fatalf("%d brokers, nodes given %q", len(c.brokers), c.natsURL())
	}
	jsz, err := c.broker.ns.Jsz(&natsserver.JSzOptions{Accounts: true, Streams: true, Config: true})
	if err != nil {
		t.Fatal(err)
	}
	replicas := map[string]int{}
	for _, a := range jsz.AccountDetails {
		for _, s := range a.Streams {
			replicas[s.Name] = s.Config.Replicas
		}
	}
	for _, name := range []string{"xhrsse_CHAT", "xhrsse_PUBLISHED", "KV_xhrsse_sessions", "KV_xhrsse_config"} {
		if replicas[name] != 3 {
			t.Errorf("stream %s: %d replicas, want 3 (all: %v)", name, replicas[name], replicas)
		}
	}
	c.brokers[0].ns.Shutdown()
	c.brokers[0].ns.WaitForShutdown()
	cl := newClient(t)
	deadline := time.Now().Add(wait)
	for _, n := range c.nodes {
		for {
			status, _ := cl.post(n.url+"/sessions", protocol.CreateSession{}, nil)
			if status == http.StatusCreated {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: POST /sessions %d with a broker of three down", n.name, status)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
