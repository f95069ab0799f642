package broadcast

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

var logConfig = ChannelConfig{Name: "log", Title: "Log", Published: true}

func TestPublishedChannelConfig(t *testing.T) {
	if _, err := New(WithChannels(ChannelConfig{Name: "log", Published: true, Rate: 1})); err == nil {
		t.Error("a published channel with a rate was accepted")
	}
	if _, err := New(WithChannels(ChannelConfig{Name: "chat", Published: true})); err == nil {
		t.Error("a published channel named chat was accepted")
	}
	// Only published channels: nothing ticks, and the hub runs.
	h := quietHub(t, WithChannels(logConfig))
	got := h.Channels()
	if len(got) != 1 || got[0].Kind != protocol.KindPublished || got[0].Rate != 0 || got[0].Width != 0 {
		t.Fatalf("channels %+v", got)
	}
	s, _ := h.NewSession([]string{"log"})
	st, _ := h.Attach(s, Position{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := testStream(t, ctx, st)
	next(t, c) // session
	if err := h.Publish(ctx, "log", []byte("a\nb")); err != nil {
		t.Fatal(err)
	}
	if m := next(t, c); m.Name != "log" || m.Data != "a\nb" || m.ID != "1" {
		t.Fatalf("got %+v", m)
	}
}

func TestPublishRefusals(t *testing.T) {
	h := quietHub(t, WithChannels(append(DefaultChannelsAt(1e-7), logConfig)...))
	ctx := context.Background()
	for _, tc := range []struct {
		channel string
		data    string
		want    error
	}{
		{"nope", "x", ErrUnknownChannel},
		{"one", "x", ErrNotPublished},
		{"log", "", ErrBadRequest},
		{"log", "\xff", ErrBadRequest},
		{"log", "a\x00", ErrBadRequest},
		{"log", strings.Repeat("a", protocol.MaxPublishData+1), ErrEventTooLarge},
	} {
		if err := h.Publish(ctx, tc.channel, []byte(tc.data)); !errors.Is(err, tc.want) {
			t.Errorf("publish %.20q to %s: %v, want %v", tc.data, tc.channel, err, tc.want)
		}
	}
	if err := h.Publish(ctx, "log", []byte(strings.Repeat("a", protocol.MaxPublishData))); err != nil {
		t.Errorf("64 KiB: %v", err)
	}
	if n := h.Snapshot().Published["log"]; n != 1 {
		t.Errorf("%d published, want 1", n)
	}
}

// deliverTo delivers published event seq to the hubs given, as a relay
// whose messages reach the hubs at different times would.
func deliverTo(seq uint64, data string, hubs ...*Hub) {
	for _, h := range hubs {
		h.DeliverPublished(seq, "log", []byte(data))
	}
}

// logData reads the stream's next n published events, skipping the rest.
func logData(t *testing.T, c <-chan protocol.Message, n int) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		m := next(t, c, protocol.EventSession, protocol.EventTuned, protocol.EventChat)
		if m.Name == protocol.EventGap {
			t.Fatalf("gap: %s", m.Data)
		}
		if m.Name == "log" {
			got = append(got, m.Data)
		}
	}
	return got
}

// A session that moves between hubs that have delivered different amounts
// of the relay's published events gets each event once: none twice from a
// hub that lags, none missed from a hub that is ahead.
func TestPublishedAcrossHandover(t *testing.T) {
	a, b := publishingHubs(t)
	s, _ := a.NewSession([]string{"log"})
	deliverTo(1, "e1", a, b)
	deliverTo(2, "e2", a) // b lags
	deliverTo(3, "e3", a)

	// a is ahead when the session moves to b: b's late deliveries of 2
	// and 3 must not repeat them.
	st, err := a.Export(s.ID(), 1<<20, Position{})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := b.Import(st)
	if err != nil {
		t.Fatal(err)
	}
	deliverTo(2, "e2", b)
	deliverTo(3, "e3", b)
	deliverTo(4, "e4", a, b)
	deliverTo(5, "e5", a, b)
	deliverTo(6, "e6", b) // b ahead: a has not had 6 yet

	// Back to a, which catches up while the session is on its way: it
	// fills in 7 from the events it keeps, and not 6, which the session
	// had from b.
	st, err = b.Export(s2.ID(), 1<<20, Position{})
	if err != nil {
		t.Fatal(err)
	}
	deliverTo(6, "e6", a)
	deliverTo(7, "e7", a, b)
	s3, err := a.Import(st)
	if err != nil {
		t.Fatal(err)
	}
	deliverTo(8, "e8", a, b)

	stream, _ := a.Attach(s3, Position{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := testStream(t, ctx, stream)
	got := logData(t, c, 8)
	if strings.Join(got, ",") != "e1,e2,e3,e4,e5,e6,e7,e8" {
		t.Fatalf("the session got %v", got)
	}

	// And a hub ahead when the session arrives: events it delivered
	// meanwhile come from its recent ones.
	s4, _ := b.NewSession([]string{"log"})
	st, err = b.Export(s4.ID(), 1<<20, Position{})
	if err != nil {
		t.Fatal(err)
	}
	deliverTo(9, "e9", a)
	deliverTo(10, "e10", a)
	s5, err := a.Import(st)
	if err != nil {
		t.Fatal(err)
	}
	deliverTo(9, "e9", b)
	deliverTo(10, "e10", b)
	deliverTo(11, "e11", a, b)
	st5, _ := a.Attach(s5, Position{})
	c5 := testStream(t, ctx, st5)
	if got := logData(t, c5, 3); strings.Join(got, ",") != "e9,e10,e11" {
		t.Fatalf("the session that moved to a hub ahead got %v", got)
	}
}

// A session recovered by a hub that lags behind the lost one starts after
// the last event on the relay: the events the client may have had from the
// lost hub do not come again when the lagging hub delivers them.
func TestPublishedAfterRecovery(t *testing.T) {
	a, b := publishingHubs(t)
	s, _ := a.NewSession([]string{"log"})
	deliverTo(1, "e1", a, b)
	deliverTo(2, "e2", a) // b lags
	deliverTo(3, "e3", a)
	// a dies with the session, which had 1 to 3; the relay's last is 3.
	s2, err := b.Recover(s.ID(), []string{"log"}, 100, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	deliverTo(2, "e2", b)
	deliverTo(3, "e3", b)
	deliverTo(4, "e4", b)
	last := uint64(99) // resumed after the gap, which other tests check
	st, _ := b.Attach(s2, Position{LastID: &last})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if got := logData(t, testStream(t, ctx, st), 1); got[0] != "e4" {
		t.Fatalf("the recovered session got %v first, want e4", got)
	}
}

// publishingHubs makes two hubs with the channel log, joined by a relay that
// delivers only where a test says (deliverTo), so one can lag the other.
func publishingHubs(t *testing.T) (a, b *Hub) {
	t.Helper()
	r := &fakeRelay{}
	chans := append(DefaultChannelsAt(1e-7), logConfig)
	for range 2 {
		r.hubs = append(r.hubs, quietHub(t, WithRelay(r), WithChannels(chans...)))
	}
	return r.hubs[0], r.hubs[1]
}
