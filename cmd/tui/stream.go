package main

import (
	"context"
	"errors"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/xhrsse/xhrsse/pkg/client"
)

// frameInterval is the shortest time between two batches handed to the
// program: ~30 redraws a second at most, however fast events arrive.
const frameInterval = time.Second / 30

// Bounds on what one batch holds when the program falls behind.
const (
	maxBatchChats  = maxChatLines
	maxBatchStates = 16
)

// stream runs one Session's Run and folds its events into batches. It owns
// two goroutines, both ended by the context given to startStream and
// tracked by the tasks passed in.
type stream struct {
	gen  int
	out  chan batchMsg   // unbuffered: a batch is handed over only when taken
	done <-chan struct{} // closed once stop is called or the model's context ends
	stop context.CancelFunc
	pub  map[string]bool // the published channels (read only)
}

// startStream starts reading sess's stream; batches are taken with next.
// It returns nil if the tasks are closed (the program is stopping).
// The events of the channels in pub are kept one by one (published
// channels); the others' are folded into one text per channel (tickers).
func startStream(ctx context.Context, ts *tasks, sess *client.Session, gen int, pub map[string]bool) *stream {
	ctx, stop := context.WithCancel(ctx)
	s := &stream{gen: gen, out: make(chan batchMsg), done: ctx.Done(), stop: stop, pub: pub}
	events := make(chan client.Event, 256)
	runErr := make(chan error, 1)
	ok := ts.Go(
		func() { runErr <- sess.Run(ctx, events) }, // until ctx ends or Run gives up
		func() { s.loop(ctx, events, runErr) },     // the only reader of events
	)
	if !ok {
		stop()
		return nil
	}
	return s
}

// next returns a Cmd that waits for the stream's next batch, or for the
// stream to be stopped.
func (s *stream) next() tea.Cmd {
	return func() tea.Msg {
		select {
		case b := <-s.out:
			return b
		case <-s.done:
			return nil
		}
	}
}

// loop collects events into a batch and offers it to the program at most
// once per frameInterval. While the program is busy the batch keeps growing
// (bounded), so a burst of a thousand ticks becomes one message.
func (s *stream) loop(ctx context.Context, events <-chan client.Event, runErr <-chan error) {
	b := s.newBatch()
	var (
		timer  *time.Timer
		timerC <-chan time.Time
		outC   chan<- batchMsg // nil until the batch is due
		last   time.Time       // when the last batch was taken
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	arm := func() {
		if timerC != nil || outC != nil {
			return
		}
		wait := frameInterval - time.Since(last)
		if wait <= 0 {
			outC = s.out
			return
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		timerC = timer.C
	}
	for {
		select {
		case ev, ok := <-events:
			if !ok { // Run closed the channel; its error follows on runErr
				events = nil
				continue
			}
			b.add(ev)
			arm()
		case <-timerC:
			timerC = nil
			outC = s.out
		case outC <- b:
			last = time.Now()
			b = s.newBatch()
			outC = nil
		case err := <-runErr:
			// Run has returned: nothing more will be sent on events.
			for drained := false; !drained && events != nil; {
				select {
				case ev, ok := <-events:
					if !ok {
						drained = true
						continue
					}
					b.add(ev)
				default:
					drained = true
				}
			}
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return
			}
			b.closed, b.err = true, err
			select {
			case s.out <- b:
			case <-ctx.Done():
			}
			return
		case <-ctx.Done():
			return
		}
	}
}

func newBatch(gen int) batchMsg {
	return batchMsg{gen: gen, ticks: map[string]string{}, posts: map[string][]string{}}
}

func (s *stream) newBatch() batchMsg {
	b := newBatch(s.gen)
	b.pub = s.pub
	return b
}

// add folds one event into the batch.
func (b *batchMsg) add(ev client.Event) {
	switch ev.Kind {
	case client.State:
		b.states = append(b.states, ev)
		if n := len(b.states) - maxBatchStates; n > 0 {
			b.states = append(b.states[:0], b.states[n:]...)
		}
		return // not a stream event
	case client.Tick:
		_, ticked := b.ticks[ev.Channel]
		posts, posted := b.posts[ev.Channel]
		if !ticked && !posted {
			b.order = append(b.order, ev.Channel)
		}
		if b.pub[ev.Channel] {
			posts = append(posts, ev.Text)
			if n := len(posts) - maxFeedLines; n > 0 {
				posts = append(posts[:0], posts[n:]...)
			}
			b.posts[ev.Channel] = posts
			break
		}
		b.ticks[ev.Channel] = keepTail(b.ticks[ev.Channel]+ev.Text, maxPaneRunes)
	case client.Tuned:
		b.tuned = ev.Tuned
	case client.Chat:
		if ev.Chat != nil {
			b.chats = append(b.chats, *ev.Chat)
			if n := len(b.chats) - maxBatchChats; n > 0 {
				b.chats = append(b.chats[:0], b.chats[n:]...)
			}
		}
	case client.BulkProgress, client.BulkDone:
		if ev.Transfer != nil && !containsXfer(b.xfers, ev.Transfer) {
			b.xfers = append(b.xfers, ev.Transfer)
		}
	case client.Gap:
		if ev.Gap != nil {
			b.gaps = append(b.gaps, *ev.Gap)
		}
	case client.Bye:
		b.bye = ev.Bye
	}
	b.events++
}

func containsXfer(xs []*client.Transfer, t *client.Transfer) bool {
	for _, x := range xs {
		if x == t {
			return true
		}
	}
	return false
}

// keepTail returns the last n runes of s (all of s if it has fewer).
func keepTail(s string, n int) string {
	if len(s) <= n { // bytes >= runes
		return s
	}
	count := 0
	for i := len(s); i > 0; {
		// Step back one rune.
		j := i - 1
		for j > 0 && s[j]&0xC0 == 0x80 {
			j--
		}
		count++
		if count == n {
			return s[j:]
		}
		i = j
	}
	return s
}
