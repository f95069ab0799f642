package clustertest_test

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xhrsse/xhrsse/internal/clustertest"
)

func TestMain(m *testing.M) {
	clustertest.RunChildBroker()
	goleak.VerifyTestMain(m)
}

// createSession POSTs /sessions to n and returns the status.
func createSession(t *testing.T, n *clustertest.Node) int {
	t.Helper()
	resp, err := http.Post(n.URL+"/sessions", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A node serves the API on its loopback address until killed; a second
// Kill, or a Shutdown after it, does nothing.
func TestNodeServesUntilKilled(t *testing.T) {
	b := clustertest.StartBroker(t)
	n := clustertest.StartNode(t, b, "a")
	if !strings.HasPrefix(n.Addr, "127.0.0.1:") || n.URL != "http://"+n.Addr || n.Name() != "a" {
		t.Fatalf("node at %q (%q), named %q", n.URL, n.Addr, n.Name())
	}
	if st := createSession(t, n); st != http.StatusCreated {
		t.Fatalf("POST /sessions: %d", st)
	}
	n.Kill()
	n.Kill()
	if left := n.Shutdown(time.Second); left != 0 {
		t.Fatalf("Shutdown after Kill: %d left", left)
	}
	if c, err := net.DialTimeout("tcp", n.Addr, time.Second); err == nil {
		c.Close()
		t.Fatal("a killed node still accepts connections")
	}
}

// Shutdown with no client coming back leaves the one session it had, after
// the hand-over time.
func TestShutdownCountsWhatIsLeft(t *testing.T) {
	b := clustertest.StartBroker(t)
	n := clustertest.StartNode(t, b, "a")
	if st := createSession(t, n); st != http.StatusCreated {
		t.Fatalf("POST /sessions: %d", st)
	}
	if left := n.Shutdown(300 * time.Millisecond); left != 1 {
		t.Fatalf("Shutdown: %d sessions left, want 1", left)
	}
}

// A broker restarted keeps its URL, and nodes can join it again.
func TestBrokerRestartKeepsItsURL(t *testing.T) {
	b := clustertest.StartBroker(t)
	url := b.URL()
	b.Stop()
	b.Start()
	if b.URL() != url {
		t.Fatalf("URL %s after the restart, %s before", b.URL(), url)
	}
	nodes := clustertest.StartNodes(t, b, "a", "b")
	for i, n := range nodes {
		if want := []string{"a", "b"}[i]; n.Name() != want {
			t.Fatalf("node %d named %q, want %q", i, n.Name(), want)
		}
		if st := createSession(t, n); st != http.StatusCreated {
			t.Fatalf("POST /sessions on %s after the restart: %d", n.Name(), st)
		}
	}
}

// Nodes on three brokers keep working with one of them away: the chat
// stream and buckets are on all three, and a node whose broker stopped
// reconnects to another. (The soak's broker faults stop each in turn.)
func TestThreeBrokersSurviveOneDown(t *testing.T) {
	bs := clustertest.StartBrokers(t)
	if got := strings.Count(bs.URL(), "nats://"); got != 3 || bs.Replicas() != 3 {
		t.Fatalf("URL %q, replicas %d", bs.URL(), bs.Replicas())
	}
	nodes := clustertest.StartNodes(t, bs, "a", "b")
	for _, b := range bs.All()[:1] {
		start := time.Now()
		b.Stop()
		for _, n := range nodes {
			deadline := time.Now().Add(20 * time.Second)
			for createSession(t, n) != http.StatusCreated {
				if time.Now().After(deadline) {
					t.Fatalf("%s: no session created within 20 s with broker %s down", n.Name(), b.Name())
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		t.Logf("broker %s down: sessions created on every node %v later", b.Name(), time.Since(start).Round(time.Millisecond))
		b.Start()
		bs.WaitReady()
	}
	from, to := bs.StepDown("xhrsse_CHAT")
	if from == to || to == "" {
		t.Fatalf("step down: leader %q then %q", from, to)
	}
}

// Broker b1 in a child process dies with SIGKILL, its leaders not stepping
// down: nodes go on through the other two (sessions are created once they
// elected leaders), and b1 comes back on its port and store.
func TestBrokerKilled(t *testing.T) {
	bs := clustertest.StartBrokersWithChild(t)
	b1 := bs.All()[0]
	url := b1.URL()
	nodes := clustertest.StartNodes(t, bs, "a", "b")
	start := time.Now()
	b1.Kill()
	if c, err := net.Dial("tcp", strings.TrimPrefix(url, "nats://")); err == nil {
		c.Close()
		t.Fatal("b1 still accepts connections after Kill")
	}
	for _, n := range nodes {
		deadline := time.Now().Add(30 * time.Second)
		for createSession(t, n) != http.StatusCreated {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no session created within 30 s of b1's death", n.Name())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("broker b1 killed: sessions created on every node %v later", time.Since(start).Round(time.Millisecond))
	b1.Start()
	bs.WaitReady()
	if b1.URL() != url {
		t.Fatalf("b1 came back at %s, was %s", b1.URL(), url)
	}
	for _, n := range nodes {
		if st := createSession(t, n); st != http.StatusCreated {
			t.Fatalf("%s after b1 came back: %d", n.Name(), st)
		}
	}
}
