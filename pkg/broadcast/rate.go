package broadcast

import (
	"fmt"
	"time"

	"golang.org/x/time/rate"
)

// A RateError says a request came too soon; RetryAfter is when to try again.
type RateError struct {
	What       string
	RetryAfter time.Duration
}

func (e *RateError) Error() string {
	return fmt.Sprintf("%s rate exceeded: retry after %v", e.What, e.RetryAfter.Round(time.Millisecond))
}

// Allow spends one of lim's tokens, or leaves them be and returns a
// *RateError saying when the next one is there; what names the allowance
// (chat, publish). The hub limits each session's chat with it, pkg/server
// each published channel's POSTs.
func Allow(lim *rate.Limiter, what string) error {
	return allowAt(lim, what, time.Now())
}

func allowAt(lim *rate.Limiter, what string, now time.Time) error {
	r := lim.ReserveN(now, 1)
	if wait := r.DelayFrom(now); wait > 0 {
		r.CancelAt(now) // a refused request spends nothing
		return &RateError{What: what, RetryAfter: wait}
	}
	return nil
}
