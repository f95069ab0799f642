package broadcast

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

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
