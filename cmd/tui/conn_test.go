package main

import (
	"context"
	"slices"
	"testing"

	"github.com/xhrsse/xhrsse/pkg/client"
)

// TestFirstSessionTunesEveryChannel: a new client opens its session tuned
// to every channel the server lists, tickers and published alike, before any
// key is pressed, as the page does (web/page_test.go and
// web/published_test.go check the page's side).
func TestFirstSessionTunesEveryChannel(t *testing.T) {
	srv := withPublished(t, 5)
	cl, err := client.New(srv.URL, client.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.CloseIdleConnections)
	chs, err := cl.Channels(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, c := range chs {
		all = append(all, c.Name)
	}
	slices.Sort(all)
	if len(all) != 4 {
		t.Fatalf("server lists %v, want three tickers and a published channel", all)
	}

	u := startTUI(t, srv.URL, 80, 24)
	u.eventually("connected", connected)
	if got := serverChannels(t, srv, u); !slices.Equal(got, all) {
		t.Fatalf("the new session is tuned to %v, want every channel %v", got, all)
	}
	u.eventually("every pane shown on, as the server says", func(m *model) bool {
		for i := range m.panes {
			if !m.panes[i].On() || !m.panes[i].server {
				return false
			}
		}
		return len(m.panes) == len(all)
	})
}
