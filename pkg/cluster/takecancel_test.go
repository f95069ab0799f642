package cluster_test

import (
	"context"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/clustertest"
)

// A client whose stream request goes away while its node is taking the
// session over (the connection cut, the client's own timeout) must not cost
// the session: the next request, on any node, finds it, with no 404. Found
// by the cluster soak (TestSoakClusterNodeKilled/Shutdown: "the session was
// lost (GET /events: 404)").
func TestTakeAbandonedByItsClientKeepsTheSession(t *testing.T) {
	nodes := clustertest.StartNodes(t, clustertest.StartBroker(t), "a", "b", "c")
	id := newSession(t, nodes[0], "one")
	rng := rand.New(rand.NewPCG(1, 2))
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer hc.CloseIdleConnections()
	const tries = 50
	lost, stuck := 0, 0
	for i := 0; i < tries && lost+stuck < 3; i++ {
		n := nodes[(i+1)%len(nodes)]
		// A stream request given up after 0 to 8 ms: mid-take, often.
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(8000))*time.Microsecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL+"/events?session="+id, nil)
		req.Header.Set("Last-Event-ID", "0")
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
		}
		cancel()
		// The session must still be somewhere: asked from any node, 200
		// (perhaps after a 503 while it is moving), never 404.
		other := nodes[(i+2)%len(nodes)]
		status := 0
		// Claim is 300 ms: a session moving answers within a second or so.
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			resp, err := hc.Get(other.URL + "/sessions/" + id)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if status = resp.StatusCode; status != http.StatusServiceUnavailable {
				break
			}
		}
		switch status {
		case http.StatusOK:
			continue
		case http.StatusNotFound:
			lost++
			t.Logf("try %d: the session is gone (404 on %s) after a stream request on %s was given up", i, other.Node.Name(), n.Node.Name())
		default:
			stuck++
			t.Logf("try %d: the session answers %d on %s for 3 s after a stream request on %s was given up", i, status, other.Node.Name(), n.Node.Name())
		}
		id = newSession(t, nodes[0], "one") // go on with another
	}
	if lost+stuck > 0 {
		t.Fatalf("stream requests given up during a take: %d lost the session (404), %d left it unreachable (503)", lost, stuck)
	}
}
