package client

import (
	"strings"
	"testing"

	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
	"github.com/xhrsse/xhrsse/pkg/publish"
)

// TestPublished reads a published channel's events on a session's stream,
// published over real HTTP by JSON and by a text body: they come as Tick
// events named after the channel, multi-line data round-trips, and a resume
// replays published events like any others.
func TestPublished(t *testing.T) {
	srv := testserver.StartConfig(t, testserver.Config{PublishTokens: []string{"tok"}},
		broadcast.WithChannels(
			broadcast.ChannelConfig{Name: "one", Title: "One", Rate: 40, Repertoire: []rune("abcdef")},
			broadcast.ChannelConfig{Name: "log", Title: "Log", Published: true},
		))
	c := newClient(t, srv.URL)
	pub := &publish.Publisher{URL: srv.URL, Token: "tok"}
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
		if err := pub.Publish(ctx, "log", data); err != nil {
			t.Fatalf("publish %q: %v", data, err)
		}
		ev := h.waitFor("the published event", isTick("log"))
		if ev.Text != data || ev.Name != "log" {
			t.Fatalf("got %q on %q, want %q on log", ev.Text, ev.Name, data)
		}
	}
	// A text body: one event a line.
	if n, err := pub.Lines(ctx, "log", strings.NewReader("l1\nl2 漢\n")); err != nil || n != 2 {
		t.Fatalf("lines: %d, %v", n, err)
	}
	for _, want := range []string{"l1", "l2 漢"} {
		if ev := h.waitFor("a line", isTick("log")); ev.Text != want {
			t.Fatalf("got %q, want %q", ev.Text, want)
		}
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}

	// Published while no stream is open: the resume replays it.
	if err := pub.Publish(ctx, "log", "while away"); err != nil {
		t.Fatal(err)
	}
	h = startRun(t, s)
	h.waitState(Resumed)
	if ev := h.waitFor("the replayed event", isTick("log")); ev.Text != "while away" {
		t.Fatalf("replayed %q, want %q", ev.Text, "while away")
	}
	h.checkIDs()
}
