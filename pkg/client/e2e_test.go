package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// fastChannels tick often enough that a test sees ticks within a blink.
func fastChannels() broadcast.Option {
	return broadcast.WithChannels(
		broadcast.ChannelConfig{Name: "one", Title: "One", Rate: 40, Repertoire: []rune("abcdef")},
		broadcast.ChannelConfig{Name: "two", Title: "Two", Rate: 40, Repertoire: []rune("一二三")},
		broadcast.ChannelConfig{Name: "three", Title: "Three", Rate: 40, Repertoire: []rune("←↑→↓")},
	)
}

func startServer(t *testing.T, opts ...broadcast.Option) *testserver.Server {
	t.Helper()
	return testserver.Start(t, append([]broadcast.Option{fastChannels()}, opts...)...)
}

func newClient(t testing.TB, base string, opts ...Option) *Client {
	t.Helper()
	c, err := New(base, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	t.Cleanup(cancel)
	return ctx
}

func isTick(ch string) func(Event) bool {
	return func(ev Event) bool { return ev.Kind == Tick && ev.Channel == ch }
}

func isTuned(chans ...string) func(Event) bool {
	return func(ev Event) bool { return ev.Kind == Tuned && slices.Equal(ev.Tuned.Channels, chans) }
}

func TestChannelsAndFiles(t *testing.T) {
	srv := startServer(t)
	c := newClient(t, srv.URL+"/")
	if c.BaseURL() != srv.URL {
		t.Errorf("BaseURL = %q, want %q", c.BaseURL(), srv.URL)
	}
	chans, err := c.Channels(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ch := range chans {
		names = append(names, ch.Name)
	}
	if !slices.Equal(names, []string{"one", "two", "three"}) {
		t.Errorf("channels %v", names)
	}
	if chans[1].Width != 2 || chans[0].Width != 1 {
		t.Errorf("widths %d %d, want 1 2", chans[0].Width, chans[1].Width)
	}
	files, err := c.Files(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 0 {
		t.Errorf("files %v, want none", files)
	}
}

// TestTuneChangesStream: a fresh session is quiet; tuning in and out changes
// what arrives on the same stream, without a reconnect.
func TestTuneChangesStream(t *testing.T) {
	srv := startServer(t)
	c := newClient(t, srv.URL)
	ctx := testCtx(t)
	s, err := c.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Channels()) != 0 {
		t.Fatalf("new session tuned to %v", s.Channels())
	}
	h := startRun(t, s)
	ev := h.waitState(Connected)
	if ev.Session.Session != s.ID() || ev.Session.Resumed {
		t.Fatalf("session event %+v", ev.Session)
	}

	got, err := s.Tune(ctx, "one", true)
	if err != nil || !slices.Equal(got, []string{"one"}) {
		t.Fatalf("Tune one: %v %v", got, err)
	}
	// Nothing but the tuned event may come before it: the session was quiet.
	first := h.next("tuned one")
	if !isTuned("one")(first) {
		t.Fatalf("first event after connect: %s", describe(first))
	}
	h.waitFor("tick of one", isTick("one"))

	if got, err = s.SetChannels(ctx, []string{"two"}); err != nil || !slices.Equal(got, []string{"two"}) {
		t.Fatalf("SetChannels two: %v %v", got, err)
	}
	h.waitFor("tuned two", isTuned("two"))
	// After the tuned event, only two ticks: count a few.
	for n := 0; n < 10; {
		ev := h.next("tick of two")
		switch {
		case ev.Kind == Tick && ev.Channel == "two":
			if ev.Text == "" || !slices.Contains([]rune("一二三"), []rune(ev.Text)[0]) {
				t.Fatalf("tick of two carries %q", ev.Text)
			}
			n++
		case ev.Kind == Tick:
			t.Fatalf("tick of %s after tuning it out", ev.Channel)
		}
	}
	if !slices.Equal(s.Channels(), []string{"two"}) {
		t.Errorf("Channels() = %v", s.Channels())
	}
	if st := s.Stats(); st.Connects != 1 || st.Duplicates != 0 {
		t.Errorf("stats %+v", st)
	}
	h.checkIDs()
}

// TestTuneIdempotent: tuning in twice is one subscription (one tick stream,
// one tuned event).
func TestTuneIdempotent(t *testing.T) {
	srv := startServer(t)
	c := newClient(t, srv.URL)
	ctx := testCtx(t)
	s, err := c.Open(ctx, "one")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Channels(), []string{"one"}) {
		t.Fatalf("Open(one) tuned %v", s.Channels())
	}
	h := startRun(t, s)
	h.waitState(Connected)
	for range 2 {
		if got, err := s.Tune(ctx, "three", true); err != nil || !slices.Equal(got, []string{"one", "three"}) {
			t.Fatalf("Tune three: %v %v", got, err)
		}
	}
	if got, err := s.Tune(ctx, "two", false); err != nil || !slices.Equal(got, []string{"one", "three"}) {
		t.Fatalf("Tune two off (not tuned): %v %v", got, err)
	}
	// A marker: chat goes through the same stream, after any tuned event
	// the POSTs above caused.
	if _, err := s.Chat(ctx, "t", "marker"); err != nil {
		t.Fatal(err)
	}
	tuned := 0
	h.waitFor("marker", func(ev Event) bool {
		if ev.Kind == Tuned {
			tuned++
		}
		return ev.Kind == Chat && ev.Chat.Text == "marker"
	})
	if tuned != 1 {
		t.Errorf("%d tuned events for one change", tuned)
	}
	// Every tick id is new: one subscription, never two deliveries per tick.
	if s.Stats().Duplicates != 0 {
		t.Errorf("duplicates %d", s.Stats().Duplicates)
	}
	h.checkIDs()

	_, err = s.Tune(ctx, "nope", true)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 404 || ae.Message == "" {
		t.Errorf("Tune unknown channel: %v", err)
	}
}

// TestChatTwoSessions: a chat reaches every session, the sender's too.
func TestChatTwoSessions(t *testing.T) {
	srv := startServer(t)
	c := newClient(t, srv.URL)
	ctx := testCtx(t)
	a, err := c.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ha, hb := startRun(t, a), startRun(t, b)
	ha.waitState(Connected)
	hb.waitState(Connected)
	const text = "hi <b>there</b> & 'you' \"all\""
	id, err := a.Chat(ctx, "ann", text)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []*runHandle{ha, hb} {
		ev := h.waitFor("chat", func(ev Event) bool { return ev.Kind == Chat && ev.Chat.ID == id })
		if ev.Chat.Name != "ann" || ev.Chat.History || ev.Chat.At.IsZero() {
			t.Errorf("chat %+v", ev.Chat)
		}
		if ev.Chat.Text != text {
			t.Errorf("chat text came back as %q", ev.Chat.Text)
		}
	}
}

// TestBulkSizes: transfers of the edge sizes arrive whole and verified.
func TestBulkSizes(t *testing.T) {
	srv := startServer(t)
	c := newClient(t, srv.URL)
	ctx := testCtx(t)
	s, err := c.Open(ctx, "one")
	if err != nil {
		t.Fatal(err)
	}
	h := startRun(t, s)
	h.waitState(Connected)
	const k = protocol.BulkChunkSize
	for _, n := range []int64{0, 1, k - 1, k, k + 1, 3 << 20} {
		hash := sha256.New()
		tr, err := s.Bulk(ctx, protocol.BulkPost{Bytes: &n}, hash)
		if err != nil {
			t.Fatalf("bulk %d: %v", n, err)
		}
		acc := tr.Accepted()
		if acc.Bytes != n || acc.Chunks != protocol.Chunks(n) {
			t.Fatalf("bulk %d accepted %+v", n, acc)
		}
		progress := 0
		h.waitFor("bulk done", func(ev Event) bool {
			if ev.Kind == BulkProgress && ev.Transfer == tr {
				progress++
			}
			return ev.Kind == BulkDone && ev.Transfer == tr
		})
		if err := tr.Err(); err != nil {
			t.Fatalf("bulk %d: %v", n, err)
		}
		if got, total := tr.Progress(); got != n || total != n {
			t.Errorf("bulk %d: progress %d/%d", n, got, total)
		}
		if progress != acc.Chunks {
			t.Errorf("bulk %d: %d progress events, %d chunks", n, progress, acc.Chunks)
		}
		sum := hex.EncodeToString(hash.Sum(nil))
		if sum != acc.SHA256 || tr.SHA256() != sum {
			t.Errorf("bulk %d: writer got sha256 %s, transfer %s, server %s", n, sum, tr.SHA256(), acc.SHA256)
		}
		select {
		case <-tr.Done():
		default:
			t.Errorf("bulk %d: Done not closed", n)
		}
	}
	h.checkIDs()
}

// TestBulkWait: Transfer.Wait ends with the transfer, or with ctx.
func TestBulkWait(t *testing.T) {
	srv := startServer(t)
	c := newClient(t, srv.URL)
	ctx := testCtx(t)
	s, err := c.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(200 << 10)
	tr, err := s.Bulk(ctx, protocol.BulkPost{Bytes: &n}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Run is not running: the transfer cannot progress.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := tr.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait without Run: %v", err)
	}
	h := startRun(t, s)
	if err := tr.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := tr.Progress(); got != n {
		t.Errorf("received %d of %d", got, n)
	}
	_ = h
}

// TestAPIErrors: non-2xx answers become *APIError with the server's words.
func TestAPIErrors(t *testing.T) {
	srv := startServer(t)
	ctx := testCtx(t)
	c := newClient(t, srv.URL)
	s, err := c.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ae *APIError
	if _, err := c.Open(ctx, "nope"); !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("Open(nope): %v", err)
	}
	if _, err := s.Chat(ctx, "", ""); !errors.As(err, &ae) || ae.Status != 400 || ae.Message == "" {
		t.Errorf("empty chat: %v", err)
	}
	// A browser-like foreign Origin is refused.
	foreign := newClient(t, srv.URL, WithOrigin("http://evil.example"))
	if _, err := foreign.Open(ctx); !errors.As(err, &ae) || ae.Status != 403 {
		t.Errorf("foreign origin: %v", err)
	}
	same := newClient(t, srv.URL, WithOrigin(srv.URL))
	if _, err := same.Open(ctx); err != nil {
		t.Errorf("same origin: %v", err)
	}
}
