package client

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	sse "github.com/r3labs/sse/v2"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// TestR3labsQuirks pins the behaviours of github.com/r3labs/sse/v2 v2.10.0
// that r3labs.go and normalize.go work around, by driving its client alone.
// If one of these starts failing after an upgrade, the workaround (and its
// doc comment) can be revisited.
func TestR3labsQuirks(t *testing.T) {
	chunkEvent := frame(1, protocol.EventBulk, `{"transfer":"T","seq":0,"chunks":1,"data":"`+strings.Repeat("A", 4*protocol.BulkChunkSize/3)+`"}`)
	cases := []struct {
		name   string
		body   string
		stream string // non-empty: call Subscribe(stream) instead of the Raw form
		// ownRetry keeps r3labs' own reconnect strategy (exponential
		// backoff); the others make one attempt.
		ownRetry bool
		check    func(t *testing.T, evs []*sse.Event, err error, query string)
	}{
		{name: "default buffer is below a bulk chunk", body: chunkEvent,
			check: func(t *testing.T, evs []*sse.Event, err error, _ string) {
				if len(chunkEvent) <= 64<<10 || !errors.Is(err, bufio.ErrTooLong) {
					t.Errorf("event of %d bytes: %v", len(chunkEvent), err)
				}
			}},
		// Its own loop does not reconnect after the server ends the stream:
		// the call returns nil after one request.
		{name: "clean end is success", body: "id: 1\ndata: a\n\n", ownRetry: true,
			check: func(t *testing.T, evs []*sse.Event, err error, _ string) {
				if err != nil || len(evs) != 1 {
					t.Errorf("err %v, %d events", err, len(evs))
				}
			}},
		{name: "truncated event dispatched", body: "id: 1\ndata: whole\n\nid: 2\ndata: trunc",
			check: func(t *testing.T, evs []*sse.Event, err error, _ string) {
				if len(evs) != 2 || string(evs[1].Data) != "trunc" || string(evs[1].ID) != "2" {
					t.Errorf("%d events", len(evs))
				}
			}},
		{name: "comment block is an event with the previous id", body: "id: 7\ndata: a\n\n: ping\n\n",
			check: func(t *testing.T, evs []*sse.Event, err error, _ string) {
				if len(evs) != 2 || len(evs[1].Data) != 0 || string(evs[1].ID) != "7" {
					t.Errorf("%d events", len(evs))
				}
			}},
		{name: "event without id gets the previous id", body: "id: 7\ndata: a\n\ndata: b\n\n",
			check: func(t *testing.T, evs []*sse.Event, err error, _ string) {
				if len(evs) != 2 || string(evs[1].ID) != "7" {
					t.Errorf("%d events", len(evs))
				}
			}},
		{name: "LF then CR does not end an event", body: "data: a\n\rdata: b\n\n",
			check: func(t *testing.T, evs []*sse.Event, err error, _ string) {
				if len(evs) != 1 || string(evs[0].Data) != "a\nb" {
					t.Errorf("%d events", len(evs))
				}
			}},
		{name: "BOM kept", body: "\uFEFFdata: a\n\ndata: b\n\n",
			check: func(t *testing.T, evs []*sse.Event, err error, _ string) {
				if len(evs) != 1 || string(evs[0].Data) != "b" {
					t.Errorf("%d events", len(evs))
				}
			}},
		{name: "empty data indistinguishable from none", body: "id: 1\nevent: x\ndata:\n\nid: 2\nevent: y\n\n",
			check: func(t *testing.T, evs []*sse.Event, err error, _ string) {
				if len(evs) != 2 || len(evs[0].Data) != 0 || len(evs[1].Data) != 0 {
					t.Errorf("%d events", len(evs))
				}
			}},
		{name: "non-raw subscribe adds stream=", body: "data: a\n\n", stream: "one",
			check: func(t *testing.T, evs []*sse.Event, err error, query string) {
				if query != "stream=one" {
					t.Errorf("query %q", query)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var query string
			requests := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				query = r.URL.RawQuery
				requests++
				mu.Unlock()
				startSSE(w)
				raw(w, tc.body)
			}))
			defer srv.Close()
			c := sse.NewClient(srv.URL)
			if !tc.ownRetry {
				c.ReconnectStrategy = noRetry{}
			}
			var evs []*sse.Event
			err := c.SubscribeWithContext(context.Background(), tc.stream, func(e *sse.Event) { evs = append(evs, e) })
			mu.Lock()
			defer mu.Unlock()
			if requests != 1 {
				t.Errorf("%d requests", requests)
			}
			tc.check(t, evs, err, query)
		})
	}
}
