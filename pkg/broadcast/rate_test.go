package broadcast

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// TestAllow: a burst passes, the next request is refused with the time until
// a token is back, a refusal spends nothing, and the token is there then.
func TestAllow(t *testing.T) {
	lim := rate.NewLimiter(2, 3)
	now := time.Now()
	for i := range 3 {
		if err := allowAt(lim, "chat", now); err != nil {
			t.Fatalf("burst token %d refused: %v", i, err)
		}
	}
	for range 2 {
		var re *RateError
		if err := allowAt(lim, "chat", now); !errors.As(err, &re) || re.What != "chat" || re.RetryAfter != 500*time.Millisecond {
			t.Fatalf("4th take: %v, want a chat RateError with RetryAfter 500ms", err)
		}
	}
	if err := allowAt(lim, "chat", now.Add(500*time.Millisecond)); err != nil {
		t.Fatalf("token not refilled after 1/rate: %v", err)
	}
	if err := allowAt(lim, "chat", now.Add(500*time.Millisecond)); err == nil {
		t.Fatal("a second token after 1/rate")
	}
}
