package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/publish"
)

const publishToken = "tui-test-token"

// withPublished starts a server with fastChannels' three tickers at rate
// and a published channel "log", which publishToken may publish to.
func withPublished(t *testing.T, rate float64) *testserver.Server {
	t.Helper()
	return testserver.StartConfig(t, testserver.Config{PublishTokens: []string{publishToken}},
		broadcast.WithChannels(
			broadcast.ChannelConfig{Name: "one", Title: "Letters", Rate: rate, Repertoire: []rune("Ж")},
			broadcast.ChannelConfig{Name: "two", Title: "Ideographs", Rate: rate, Repertoire: []rune("漢")},
			broadcast.ChannelConfig{Name: "three", Title: "Arrows", Rate: rate, Repertoire: []rune("∀")},
			broadcast.ChannelConfig{Name: "log", Title: "Build log", Published: true},
		))
}

// publisher returns a function that publishes to the server's "log" over
// HTTP, as a backend would, failing the test on any error.
func publisher(t *testing.T, url string) func(data string) {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	p := &publish.Publisher{URL: url, Token: publishToken, Client: &http.Client{Transport: tr}}
	return func(data string) {
		t.Helper()
		if err := p.Publish(context.Background(), "log", data); err != nil {
			t.Fatalf("publish %q: %v", data, err)
		}
	}
}

// TestPublishedPane runs the client against a server with a published
// channel: it gets a pane of its own, on from the start, and what is
// published over HTTP shows there as lines, inert, at 80x24.
func TestPublishedPane(t *testing.T) {
	srv := withPublished(t, 5)
	publish := publisher(t, srv.URL)
	u := startTUI(t, srv.URL, 80, 24)
	u.eventually("connected, the log pane on", func(m *model) bool {
		return connected(m) && len(m.panes) == 4 && m.panes[3].feed != nil && m.panes[3].server
	})

	publish("build 42 started")
	publish("step 1\nstep 2")
	publish("red \x1b[31mRED\x1b[0m \x1b]52;c;aGk=\x07 \u202Eevil\u202C \u2066iso\u2069 <b>html</b>")
	u.eventually("three events in the log pane", func(m *model) bool { return m.panes[3].arrived == 3 })
	view := probe(u, (*model).View)
	checkScreen(t, view, 80, 24)
	for _, want := range []string{"4 Build log", "build 42 started", "step 1", "step 2",
		"red \uFFFD[31mRED\uFFFD[0m \uFFFD]52;c;aGk=\uFFFD \uFFFDevil\uFFFD \uFFFDiso\uFFFD <b>html</b>"} {
		if !strings.Contains(view, want) {
			t.Fatalf("screen lacks %q:\n%s", want, view)
		}
	}
	for _, r := range view {
		if r == 0x1b || (r < 0x20 && r != '\n') || isBidiControl(r) {
			t.Fatalf("%U reached the screen:\n%q", r, view)
		}
	}
	// Newest at the bottom: the pane's last body line is the newest event.
	rows := probe(u, func(m *model) []string { return m.panes[3].feed.Last(1) })
	if len(rows) != 1 || !strings.Contains(rows[0], "<b>html</b>") {
		t.Fatalf("last row %q, want the newest event", rows)
	}

	// Tuned out with its key, the pane takes nothing more; in again, it does.
	u.press("4")
	u.eventually("log off", func(m *model) bool { return !m.tuneBusy && !m.panes[3].server })
	publish("while off")
	u.press("4")
	u.eventually("log on", func(m *model) bool { return !m.tuneBusy && m.panes[3].server })
	publish("back on")
	u.eventually("the line after tuning in", func(m *model) bool {
		return strings.Contains(strings.Join(m.panes[3].feed.Last(1), ""), "back on")
	})
	if got := probe(u, func(m *model) int64 { return m.panes[3].arrived }); got != 4 {
		t.Fatalf("log pane got %d events, want 4 (none while off)", got)
	}
	if strings.Contains(probe(u, (*model).View), "while off") {
		t.Fatal("an event published while the channel was off is shown")
	}
}
