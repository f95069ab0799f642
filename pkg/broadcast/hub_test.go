package broadcast

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// pipeWriter is an http.ResponseWriter whose body is read, as it is
// written, by a protocol.Decoder on the other end of a pipe.
type pipeWriter struct {
	pw  *io.PipeWriter
	hdr http.Header
}

func (w *pipeWriter) Header() http.Header         { return w.hdr }
func (w *pipeWriter) WriteHeader(int)             {}
func (w *pipeWriter) Write(p []byte) (int, error) { return w.pw.Write(p) }

// testStream runs st and returns a channel of the messages it writes. The
// stream ends when ctx ends or the hub closes; cleanup waits for it.
func testStream(t *testing.T, ctx context.Context, st *Stream) <-chan protocol.Message {
	t.Helper()
	pr, pw := io.Pipe()
	out := make(chan protocol.Message, 4096)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		err := st.Run(ctx, &pipeWriter{pw: pw, hdr: http.Header{}})
		pw.CloseWithError(err)
	}()
	go func() {
		defer wg.Done()
		defer close(out)
		dec := protocol.NewDecoder(pr, 1<<20)
		for {
			m, err := dec.Next()
			if err != nil {
				pr.CloseWithError(err)
				return
			}
			out <- m
		}
	}()
	t.Cleanup(wg.Wait)
	return out
}

// next returns the next message that is not a channel tick, failing after a while.
func next(t *testing.T, c <-chan protocol.Message, skip ...string) protocol.Message {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-c:
			if !ok {
				t.Fatal("stream ended")
			}
			if contains(skip, m.Name) {
				continue
			}
			return m
		case <-timeout:
			t.Fatal("no event within 10s")
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// quietHub is a hub whose channels tick so rarely (every 116 days, ticks
// fall at multiples of the period since the epoch) that tests drive
// publishing themselves.
func quietHub(t *testing.T, opts ...Option) *Hub {
	t.Helper()
	h, err := New(append([]Option{WithChannels(DefaultChannelsAt(1e-7)...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return h
}

func tick(h *Hub, channel int, s string) {
	body, _ := protocol.AppendBody(nil, h.channels[channel].Name, []byte(s))
	h.deliverTicks([]dueTick{{c: h.channels[channel], ev: &event{body: body, at: time.Now().UnixNano()}}})
}

func TestTuneFanOut(t *testing.T) {
	h := quietHub(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, _ := h.NewSession([]string{"one"})
	b, _ := h.NewSession([]string{"one", "two"})
	sa, _ := h.Attach(a, Position{})
	sb, _ := h.Attach(b, Position{})
	ca, cb := testStream(t, ctx, sa), testStream(t, ctx, sb)
	for _, c := range []<-chan protocol.Message{ca, cb} {
		if m := next(t, c); m.Name != protocol.EventSession || m.ID != "0" {
			t.Fatalf("first event %+v, want session with id 0", m)
		}
	}
	tick(h, 0, "x")
	tick(h, 1, "語")
	if m := next(t, ca); m.Name != "one" || m.Data != "x" || m.ID != "1" {
		t.Fatalf("a got %+v", m)
	}
	if m := next(t, cb); m.Name != "one" || m.Data != "x" || m.ID != "1" {
		t.Fatalf("b got %+v", m)
	}
	if m := next(t, cb); m.Name != "two" || m.Data != "語" || m.ID != "2" {
		t.Fatalf("b got %+v", m)
	}

	// Tuning in twice is one subscription and one tuned event.
	for range 2 {
		got, err := a.Tune("two", true)
		if err != nil || len(got) != 2 {
			t.Fatalf("Tune: %v %v", got, err)
		}
	}
	if m := next(t, ca); m.Name != protocol.EventTuned || m.Data != `{"channels":["one","two"]}` {
		t.Fatalf("a got %+v", m)
	}
	tick(h, 1, "字")
	if m := next(t, ca); m.Name != "two" || m.Data != "字" || m.ID != "3" {
		t.Fatalf("a got %+v, want the tick right after one tuned event", m)
	}
	if _, err := a.SetChannels(nil); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ca); m.Name != protocol.EventTuned || m.Data != `{"channels":[]}` {
		t.Fatalf("a got %+v", m)
	}
	if _, err := a.Tune("four", true); !errors.Is(err, ErrUnknownChannel) {
		t.Fatalf("unknown channel: %v", err)
	}
	if len(h.subs[0]) != 1 || len(h.subs[1]) != 1 {
		t.Fatalf("listener sets %d %d, want 1 1", len(h.subs[0]), len(h.subs[1]))
	}
}

func TestChatHistoryAndOrder(t *testing.T) {
	h := quietHub(t, WithChatRate(1000, 1000))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	from, _ := h.NewSession(nil)
	for i := range protocol.ChatHistory + 5 {
		if _, err := h.Chat(context.Background(), from, "ann", "m"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := h.NewSession(nil)
	st, _ := h.Attach(s, Position{})
	c := testStream(t, ctx, st)
	next(t, c) // session
	for i := 5; i < protocol.ChatHistory+5; i++ {
		m := next(t, c)
		var msg protocol.Chat
		if err := json.Unmarshal([]byte(m.Data), &msg); err != nil {
			t.Fatal(err)
		}
		if msg.Text != "m"+strconv.Itoa(i) || !msg.History || m.ID != strconv.Itoa(i-4) {
			t.Fatalf("history %d: %+v id %s", i, msg, m.ID)
		}
	}
	if _, err := h.Chat(context.Background(), from, "bob", "live \x1b[2J <b>"); err != nil {
		t.Fatal(err)
	}
	var msg protocol.Chat
	m := next(t, c)
	if err := json.Unmarshal([]byte(m.Data), &msg); err != nil {
		t.Fatal(err)
	}
	if msg.History || msg.Text != "live \x1b[2J <b>" || msg.Name != "bob" {
		t.Fatalf("live chat %+v", msg)
	}
}

func TestChatLimits(t *testing.T) {
	h := quietHub(t, WithChatRate(1, 2), WithMaxChatText(5))
	s, _ := h.NewSession(nil)
	for _, tc := range []struct{ name, text string }{
		{"a", ""}, {"a", "123456"}, {"a", "\xff"}, {"a\x00", "x"}, {string(make([]rune, 33)), "x"},
	} {
		if _, err := h.Chat(context.Background(), s, tc.name, tc.text); !errors.Is(err, ErrBadRequest) {
			t.Errorf("Chat(%q, %q) = %v, want ErrBadRequest", tc.name, tc.text, err)
		}
	}
	for range 2 {
		if _, err := h.Chat(context.Background(), s, "a", "ok"); err != nil {
			t.Fatal(err)
		}
	}
	var re *RateError
	if _, err := h.Chat(context.Background(), s, "a", "ok"); !errors.As(err, &re) || re.RetryAfter <= 0 || re.RetryAfter > time.Second {
		t.Fatalf("third chat: %v, want a RateError of at most 1s", err)
	}
}

func TestResumeAndGap(t *testing.T) {
	h := quietHub(t, WithReplay(8, 0, 8))
	s, _ := h.NewSession([]string{"one"})
	ctx, cancel := context.WithCancel(context.Background())
	st, _ := h.Attach(s, Position{})
	c := testStream(t, ctx, st)
	next(t, c)
	for i := range 3 {
		tick(h, 0, strconv.Itoa(i))
		next(t, c)
	}
	cancel()
	for range c {
	}
	for i := 3; i < 6; i++ {
		tick(h, 0, strconv.Itoa(i))
	}

	// Resume after id 2: ids 3..7 follow (7 is a tick sent after the resume).
	last := uint64(2)
	ctx2, cancel2 := context.WithCancel(context.Background())
	st2, _ := h.Attach(s, Position{LastID: &last})
	c2 := testStream(t, ctx2, st2)
	if m := next(t, c2); m.Name != protocol.EventSession || m.ID != "2" || m.Data != `{"session":"`+s.ID()+`","channels":["one"],"resumed":true}` {
		t.Fatalf("session event %+v", m)
	}
	for want := 3; want <= 7; want++ {
		if want == 7 {
			tick(h, 0, "live")
		}
		if m := next(t, c2); m.ID != strconv.Itoa(want) || m.Name != "one" {
			t.Fatalf("got %+v, want id %d", m, want)
		}
	}
	cancel2()
	for range c2 {
	}

	// 20 more ticks (8..27) while away: the ring keeps 20..27, so 12 are missed.
	for i := range 20 {
		tick(h, 0, strconv.Itoa(i))
	}
	last = 7
	ctx3, cancel3 := context.WithCancel(context.Background())
	defer cancel3()
	st3, _ := h.Attach(s, Position{LastID: &last})
	c3 := testStream(t, ctx3, st3)
	next(t, c3)
	m := next(t, c3)
	if m.Name != protocol.EventGap || m.Data != `{"missed":12}` || m.ID != "19" {
		t.Fatalf("got %+v, want gap of 12 with id 19", m)
	}
	for want := 20; want <= 27; want++ {
		if m := next(t, c3); m.ID != strconv.Itoa(want) {
			t.Fatalf("got %+v, want id %d", m, want)
		}
	}
}

func TestReplaceStream(t *testing.T) {
	h := quietHub(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, _ := h.NewSession([]string{"one"})
	st1, _ := h.Attach(s, Position{})
	c1 := testStream(t, ctx, st1)
	next(t, c1)
	tick(h, 0, "a")
	next(t, c1)
	st2, _ := h.Attach(s, Position{})
	c2 := testStream(t, ctx, st2)
	if m := next(t, c1); m.Name != protocol.EventBye || m.Data != `{"reason":"replaced"}` || m.ID != "1" {
		t.Fatalf("old stream got %+v, want bye replaced at id 1", m)
	}
	if _, ok := <-c1; ok {
		t.Fatal("old stream went on after bye")
	}
	// The new stream, without Last-Event-ID, continues after what the old one wrote.
	if m := next(t, c2); m.Name != protocol.EventSession || m.ID != "1" {
		t.Fatalf("new stream got %+v", m)
	}
	tick(h, 0, "b")
	if m := next(t, c2); m.ID != "2" || m.Data != "b" {
		t.Fatalf("new stream got %+v", m)
	}
}

func TestSessionTTL(t *testing.T) {
	h := quietHub(t, WithSessionTTL(50*time.Millisecond))
	idle, _ := h.NewSession(nil)
	held, _ := h.NewSession(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, _ := h.Attach(held, Position{})
	c := testStream(t, ctx, st)
	next(t, c)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := h.Session(idle.ID()); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("idle session never expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // several TTLs
	if _, ok := h.Session(held.ID()); !ok {
		t.Fatal("session with a stream expired")
	}
	if _, err := idle.Tune("one", true); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("tune on expired session: %v", err)
	}
	if _, err := h.Attach(idle, Position{}); !errors.Is(err, ErrUnknownSession) {
		t.Fatalf("attach to expired session: %v", err)
	}
}

func TestMaxStreamsAndSessions(t *testing.T) {
	h := quietHub(t, WithMaxStreams(1), WithMaxSessions(2))
	a, _ := h.NewSession(nil)
	b, _ := h.NewSession(nil)
	if _, err := h.NewSession(nil); !errors.Is(err, ErrTooManySessions) {
		t.Fatalf("third session: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := h.Attach(a, Position{})
	if err != nil {
		t.Fatal(err)
	}
	c := testStream(t, ctx, st)
	next(t, c)
	if _, err := h.Attach(b, Position{}); !errors.Is(err, ErrTooManyStreams) {
		t.Fatalf("second stream: %v", err)
	}
}

func TestBulkDeterministicAndVerified(t *testing.T) {
	for _, size := range []int64{0, 1, protocol.BulkChunkSize - 1, protocol.BulkChunkSize, protocol.BulkChunkSize + 1, 3<<20 + 7} {
		t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
			h := quietHub(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s, _ := h.NewSession(nil)
			st, _ := h.Attach(s, Position{})
			c := testStream(t, ctx, st)
			next(t, c)
			acc, err := s.Bulk(protocol.BulkPost{Bytes: &size})
			if err != nil {
				t.Fatal(err)
			}
			if acc.Chunks != protocol.Chunks(size) || acc.Bytes != size {
				t.Fatalf("accepted %+v", acc)
			}
			sum := sha256.New()
			var n int64
			for seq := 0; ; seq++ {
				m := next(t, c)
				if m.Name == protocol.EventBulkEnd {
					var end protocol.BulkEnd
					if err := json.Unmarshal([]byte(m.Data), &end); err != nil {
						t.Fatal(err)
					}
					got := hex.EncodeToString(sum.Sum(nil))
					if seq != acc.Chunks || end.SHA256 != acc.SHA256 || got != acc.SHA256 || n != size || end.Bytes != size {
						t.Fatalf("end after %d chunks, %d bytes: %+v, computed %s, accepted %+v", seq, n, end, got, acc)
					}
					return
				}
				var ch protocol.BulkChunk
				if err := json.Unmarshal([]byte(m.Data), &ch); err != nil {
					t.Fatal(err)
				}
				if ch.Seq != seq || ch.Chunks != acc.Chunks || ch.Transfer != acc.Transfer {
					t.Fatalf("chunk %+v, want seq %d", ch, seq)
				}
				sum.Write(ch.Data)
				n += int64(len(ch.Data))
			}
		})
	}
}

func TestBulkChunkJSONMatchesEncodingJSON(t *testing.T) {
	tr := &transfer{id: "abc_-9", size: 100_000, chunks: protocol.Chunks(100_000)}
	tr.seed[0] = 7
	body, _, err := tr.appendChunkEvent(nil, nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tr.chunk(nil, 2)
	again, _ := tr.chunk(nil, 2)
	if string(raw) != string(again) {
		t.Fatal("chunk is not deterministic")
	}
	data, _ := json.Marshal(protocol.BulkChunk{Transfer: tr.id, Seq: 2, Chunks: tr.chunks, Data: raw})
	want, _ := protocol.AppendBody(nil, protocol.EventBulk, data)
	if string(body) != string(want) {
		t.Fatalf("hand-written chunk event differs:\n%.200s\n%.200s", body, want)
	}
	if len(raw) != 100_000-2*protocol.BulkChunkSize {
		t.Fatalf("last chunk %d bytes", len(raw))
	}
	if _, err := base64.StdEncoding.DecodeString(string(data[len(`{"transfer":"abc_-9","seq":2,"chunks":3,"data":"`) : len(data)-2])); err != nil {
		t.Fatal(err)
	}
}

func TestCloseSendsBye(t *testing.T) {
	chans := DefaultChannels()
	h, err := New(WithChannels(chans...))
	if err != nil {
		t.Fatal(err)
	}
	var cs []<-chan protocol.Message
	for range 3 {
		s, _ := h.NewSession([]string{"one"})
		st, _ := h.Attach(s, Position{})
		c := testStream(t, context.Background(), st)
		next(t, c)
		cs = append(cs, c)
	}
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if m := next(t, c, "one"); m.Name != protocol.EventBye || m.Data != `{"reason":"shutdown"}` {
			t.Fatalf("got %+v, want bye shutdown", m)
		}
	}
	if _, err := h.NewSession(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("NewSession after Close: %v", err)
	}
}

func TestBulkSumCached(t *testing.T) {
	h := quietHub(t, WithMaxTransfers(4))
	s, _ := h.NewSession(nil)
	n, m := int64(200_000), int64(200_001)
	a, err := s.Bulk(protocol.BulkPost{Bytes: &n})
	if err != nil {
		t.Fatal(err)
	}
	if h.sums.get(n) != a.SHA256 {
		t.Fatal("sum of a generated transfer not cached")
	}
	b, _ := s.Bulk(protocol.BulkPost{Bytes: &n})
	c, _ := s.Bulk(protocol.BulkPost{Bytes: &m})
	if a.SHA256 != b.SHA256 || a.SHA256 == c.SHA256 || a.Transfer == b.Transfer {
		t.Fatalf("same size must give the same data under another transfer id: %+v %+v %+v", a, b, c)
	}
	// The cached sum is the sum of what is sent.
	tr := &transfer{size: n, chunks: protocol.Chunks(n), seed: h.bulkSeed}
	if err := tr.hash(); err != nil || tr.sum != a.SHA256 {
		t.Fatalf("recomputed sum %s, cached %s (%v)", tr.sum, a.SHA256, err)
	}
}
