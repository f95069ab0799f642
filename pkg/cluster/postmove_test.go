package cluster_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/clustertest"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A POST for a session that is moving between nodes (its client's stream
// came back on another node) is answered as if it had not moved: 200 or
// 202, or 503 to try again, never 404: the session exists. Found by the
// cluster soak (TestSoakClusterNodeKilled: "chat POST: … 404 Not Found:
// unknown session" on a session that was never lost).
func TestPostWhileTheSessionMovesIsNot404(t *testing.T) {
	nodes := clustertest.StartNodes(t, clustertest.StartBroker(t), "a", "b", "c")
	id := newSession(t, nodes[0], "one")
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
	defer hc.CloseIdleConnections()
	tune, _ := json.Marshal(protocol.Tune{Channel: "one", On: ptr(true)})
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
	)
	for i := range 20 {
		var wg sync.WaitGroup
		// The stream moves the session to the next node…
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, nodes[(i+1)%3].URL+"/events?session="+id, nil)
			req.Header.Set("Last-Event-ID", "0")
			resp, err := hc.Do(req)
			if err != nil {
				t.Errorf("GET /events: %v", err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET /events on %s: %d", nodes[(i+1)%3].Node.Name(), resp.StatusCode)
				return
			}
			// Until the session event: the take is done.
			dec := protocol.NewDecoder(bufio.NewReader(resp.Body), 1<<20)
			if _, err := dec.Next(); err != nil {
				t.Errorf("stream: %v", err)
			}
		})
		// …while POSTs for it arrive on every node.
		for k := range 8 {
			wg.Go(func() {
				n := nodes[(i+k)%3]
				resp, err := hc.Post(n.URL+"/sessions/"+id+"/channels", "application/json", bytes.NewReader(tune))
				if err != nil {
					t.Errorf("POST: %v", err)
					return
				}
				resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	t.Logf("answers to POSTs during moves: %v", statuses)
	if n := statuses[http.StatusNotFound]; n > 0 {
		t.Errorf("%d of the POSTs for a session that was only moving were answered 404", n)
	}
}
