package protocol

import (
	"strconv"
	"time"
)

// ParseRetryAfter reads a Retry-After header (RFC 9110, section 10.2.3):
// delay-seconds, or an HTTP date taken relative to now; a date already past
// means no wait. It reports false for an empty or unreadable value. The
// server sends seconds; clients accept both forms, as HTTP allows.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second, true
	}
	// The three date forms HTTP accepts, as net/http.ParseTime reads them
	// (the first is http.TimeFormat); this package does no I/O, so it does
	// not import net/http for them.
	for _, layout := range []string{"Mon, 02 Jan 2006 15:04:05 GMT", time.RFC850, time.ANSIC} {
		if t, err := time.Parse(layout, v); err == nil {
			return max(t.Sub(now), 0), true
		}
	}
	return 0, false
}
