package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/client"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// runLoop runs a stream's batching loop on channels the test controls.
func runLoop(t *testing.T) (s *stream, events chan client.Event, runErr chan error, stop func()) {
	t.Helper()
	s = &stream{gen: 7, out: make(chan batchMsg)}
	events = make(chan client.Event)
	runErr = make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.loop(ctx, events, runErr)
	}()
	stop = func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return s, events, runErr, stop
}

// TestStreamCoalesces feeds 2,000 ticks as fast as the loop takes them and
// checks that every character arrives, in order, in far fewer messages than
// events: never more than one per frame interval.
func TestStreamCoalesces(t *testing.T) {
	s, events, runErr, _ := runLoop(t)
	const n = 2000
	start := time.Now()
	go func() {
		for i := range n {
			ch := []string{"one", "two"}[i%2]
			events <- client.Event{Kind: client.Tick, Channel: ch, Text: string(rune('a' + i%26))}
		}
		events <- client.Event{Kind: client.Chat, Chat: &protocol.Chat{ID: 1, Text: "hi"}}
		runErr <- errors.New("stream gone")
	}()
	var (
		got     = map[string]*strings.Builder{"one": {}, "two": {}}
		batches int
		total   int
		chats   int
		final   batchMsg
	)
	for {
		b := <-s.out
		if b.gen != 7 {
			t.Fatalf("batch of generation %d, want 7", b.gen)
		}
		batches++
		total += b.events
		chats += len(b.chats)
		for _, ch := range b.order {
			got[ch].WriteString(b.ticks[ch])
		}
		if b.closed {
			final = b
			break
		}
	}
	elapsed := time.Since(start)
	if total != n+1 || chats != 1 {
		t.Fatalf("batches folded %d events and %d chats, want %d and 1", total, chats, n+1)
	}
	for i, ch := range []string{"one", "two"} {
		var want strings.Builder
		for j := i; j < n; j += 2 {
			want.WriteRune(rune('a' + j%26))
		}
		if got[ch].String() != want.String() {
			t.Fatalf("channel %s: characters lost or reordered", ch)
		}
	}
	if limit := int(elapsed/frameInterval) + 2; batches > limit {
		t.Fatalf("%d batches in %v: more than one per %v (limit %d)", batches, elapsed, frameInterval, limit)
	}
	if final.err == nil || final.err.Error() != "stream gone" {
		t.Fatalf("final batch err = %v", final.err)
	}
	t.Logf("%d events in %d batches over %v", n+1, batches, elapsed.Round(time.Millisecond))
}

// TestStreamBacklogIsOneMessage holds the reader back and checks that what
// piled up meanwhile comes as one bounded batch.
func TestStreamBacklogIsOneMessage(t *testing.T) {
	s, events, _, _ := runLoop(t)
	for range 3 * maxPaneRunes {
		events <- client.Event{Kind: client.Tick, Channel: "one", Text: "x"}
	}
	events <- client.Event{Kind: client.State, State: client.Reconnecting, Attempt: 1}
	events <- client.Event{Kind: client.Tuned, Tuned: &protocol.Tuned{Channels: []string{"one"}}}
	events <- client.Event{Kind: client.Tuned, Tuned: &protocol.Tuned{Channels: []string{"two"}}}
	b := <-s.out
	// The first batch may have been offered before the flood; take until
	// the tuned events are in.
	for b.tuned == nil || b.tuned.Channels[0] != "two" {
		b = <-s.out
	}
	if n := len([]rune(b.ticks["one"])); n > maxPaneRunes {
		t.Fatalf("batch holds %d characters of one channel, bound %d", n, maxPaneRunes)
	}
	if len(b.states) != 1 || b.states[0].State != client.Reconnecting {
		t.Fatalf("states %+v", b.states)
	}
}

// TestStreamStopsOnCancel checks that the loop ends when its context does,
// even with a batch pending that nobody takes (goleak checks the rest).
func TestStreamStopsOnCancel(t *testing.T) {
	_, events, _, stop := runLoop(t)
	events <- client.Event{Kind: client.Tick, Channel: "one", Text: "x"}
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("loop did not stop")
	}
}

func TestKeepTail(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abcdef", 3, "def"},
		{"漢字かな", 2, "かな"},
		{"a漢b字", 3, "漢b字"},
		{"", 3, ""},
	}
	for _, tt := range tests {
		if got := keepTail(tt.in, tt.n); got != tt.want {
			t.Errorf("keepTail(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// TestBatchKeepsPublishedEvents: a ticker's characters fold into one text,
// a published channel's events stay one by one (each is a line), bounded.
func TestBatchKeepsPublishedEvents(t *testing.T) {
	b := newBatch(1)
	b.pub = map[string]bool{"log": true}
	b.add(client.Event{Kind: client.Tick, Channel: "log", Text: "first"})
	b.add(client.Event{Kind: client.Tick, Channel: "one", Text: "a"})
	b.add(client.Event{Kind: client.Tick, Channel: "one", Text: "b"})
	b.add(client.Event{Kind: client.Tick, Channel: "log", Text: "second\nline"})
	if b.ticks["one"] != "ab" || strings.Join(b.posts["log"], "|") != "first|second\nline" {
		t.Fatalf("ticks %q, posts %q", b.ticks, b.posts)
	}
	if strings.Join(b.order, ",") != "log,one" || b.events != 4 {
		t.Fatalf("order %q, %d events", b.order, b.events)
	}
	for i := range 2 * maxFeedLines {
		b.add(client.Event{Kind: client.Tick, Channel: "log", Text: fmt.Sprint(i)})
	}
	if n := len(b.posts["log"]); n != maxFeedLines || b.posts["log"][n-1] != fmt.Sprint(2*maxFeedLines-1) {
		t.Fatalf("batch keeps %d events of log, the last %q", n, b.posts["log"][n-1])
	}
}
