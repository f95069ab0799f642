package soak

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/client"
)

// TestClientSurvivesItsOwnRetry: Go's http.Transport sends a GET again, on
// a new connection, when a reused kept-alive connection fails before the
// answer's first byte, although the first request may have reached the
// server. pkg/client sends its stream requests through the same Transport
// as its POSTs, so a stream request can go out twice. If the first copy
// reaches the server last, it replaces the stream the client is reading,
// which gets bye "replaced", and Run gives up with ErrReplaced ("another
// client attached to this session") though no other client exists. Run must
// go on.
func TestClientSurvivesItsOwnRetry(t *testing.T) {
	srv := testserver.Start(t, broadcast.WithChannels(fastChannels(50)...))
	// The proxy holds the first stream request on a reused connection back
	// for a second, and drops that connection at once (WithGhost).
	p := StartProxy(t, []string{srv.Addr}, WithGhost(time.Second))
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := client.New(p.URL(), client.WithHTTPClient(&http.Client{Transport: tr}), client.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	s, err := c.Open(ctx, "one") // leaves a kept-alive connection for Run's first request
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan client.Event, 64)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx, events) }()
	defer func() { stop(); <-done }()

	fired := p.Ghosted()
	// The client may avoid the danger altogether by not sending its stream
	// request on the reused connection: then nothing is delayed, and the
	// stream must simply go on.
	after := time.After(5 * time.Second)
	ticks := 0
	for {
		select {
		case ev := <-events:
			switch {
			case ev.Kind == client.State && ev.State == client.Failed:
				t.Fatalf("Run failed: %v (the stream was replaced by the client's own request, sent twice by http.Transport)", ev.Err)
			case ev.Kind == client.Bye:
				t.Logf("bye %q at %d", ev.Bye.Reason, ev.ID)
			case ev.Kind == client.Tick:
				ticks++
			}
		case err := <-done:
			done <- err
			if errors.Is(err, client.ErrReplaced) {
				t.Fatalf("Run returned %v: its stream was replaced by its own first request, which http.Transport had sent again on a new connection", err)
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Run returned %v", err)
			}
		case <-fired:
			fired, after, ticks = nil, time.After(3*time.Second), 0
		case <-after:
			if ticks == 0 {
				t.Fatal("no tick in the 3 s after the delayed request reached the server (or in 5 s without one)")
			}
			t.Logf("%d ticks in the last seconds (delayed request reached the server: %v)", ticks, fired == nil)
			return
		case <-ctx.Done():
			t.Fatal("the test ran out of time")
		}
	}
}
