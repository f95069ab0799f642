package client

import (
	"errors"
	"net/http"
	"testing"

	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// TestPublish publishes over real HTTP and reads the events back on a
// session's stream: multi-line data round-trips, and a resume replays
// published events like any others. A refused publish is an *APIError with
// the server's status.
func TestPublish(t *testing.T) {
	srv := testserver.StartConfig(t, testserver.Config{PublishTokens: []string{"tok"}},
		broadcast.WithChannels(
			broadcast.ChannelConfig{Name: "one", Title: "One", Rate: 40, Repertoire: []rune("abcdef")},
			broadcast.ChannelConfig{Name: "log", Title: "Log", Published: true},
		))
	c := newClient(t, srv.URL)
	ctx := testCtx(t)
	chs, err := c.Channels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(chs) != 2 || chs[0].Published() || !chs[1].Published() || chs[1].Kind != protocol.KindPublished {
		t.Fatalf("channels %+v: want ticker one and published log", chs)
	}

	s, err := c.Open(ctx, "log")
	if err != nil {
		t.Fatal(err)
	}
	h := startRun(t, s)
	h.waitState(Connected)
	for _, data := range []string{"first", "two\nlines", "\nblank first\n\nand middle", "漢字 <b>"} {
		if err := c.Publish(ctx, "tok", "log", data); err != nil {
			t.Fatalf("publish %q: %v", data, err)
		}
		ev := h.waitFor("the published event", isTick("log"))
		if ev.Text != data || ev.Name != "log" {
			t.Fatalf("got %q on %q, want %q on log", ev.Text, ev.Name, data)
		}
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}

	// Published while no stream is open: the resume replays it.
	if err := c.Publish(ctx, "tok", "log", "while away"); err != nil {
		t.Fatal(err)
	}
	h = startRun(t, s)
	h.waitState(Resumed)
	if ev := h.waitFor("the replayed event", isTick("log")); ev.Text != "while away" {
		t.Fatalf("replayed %q, want %q", ev.Text, "while away")
	}

	for _, tc := range []struct {
		token, channel string
		status         int
	}{
		{"wrong", "log", http.StatusUnauthorized},
		{"tok", "nope", http.StatusNotFound},
		{"tok", "one", http.StatusConflict},
	} {
		err := c.Publish(ctx, tc.token, tc.channel, "x")
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != tc.status || ae.Message == "" {
			t.Errorf("publish to %s with %s: %v, want an APIError %d with a message", tc.channel, tc.token, err, tc.status)
		}
	}
}
