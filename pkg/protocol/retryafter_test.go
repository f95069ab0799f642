package protocol_test

import (
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"1", time.Second, true},
		{"120", 2 * time.Minute, true},
		{"Sun, 01 Mar 2026 12:00:30 GMT", 30 * time.Second, true}, // IMF-fixdate
		{"Sunday, 01-Mar-26 12:01:00 GMT", time.Minute, true},     // obsolete RFC 850
		{"Sun Mar  1 12:00:05 2026", 5 * time.Second, true},       // obsolete asctime
		{"Sun, 01 Mar 2026 11:00:00 GMT", 0, true},                // past: no wait
		{"", 0, false},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"99999999999", 0, false}, // beyond 32 bits of seconds
		{"2026-03-01T12:00:30Z", 0, false},
	} {
		got, ok := protocol.ParseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
