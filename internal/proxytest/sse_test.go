package proxytest

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/ssetest"
)

// openStream opens a stream as a browser does, asking for
// text/event-stream; it is read until the test ends.
func openStream(t testing.TB, hc *http.Client, url string, header http.Header) *ssetest.Stream {
	t.Helper()
	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Accept", "text/event-stream")
	return ssetest.Open(t, hc, url, h)
}

// latencies summarizes durations for a log line.
type latencies []time.Duration

func (l latencies) String() string {
	if len(l) == 0 {
		return "none"
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return fmt.Sprintf("n=%d min=%v median=%v max=%v", len(s), s[0].Round(time.Microsecond),
		s[len(s)/2].Round(time.Microsecond), s[len(s)-1].Round(time.Microsecond))
}
