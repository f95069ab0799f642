package ssetest

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Metric reads one counter or gauge without labels from the server's
// /metrics at base; a missing metric fails the test.
func Metric(t testing.TB, hc *http.Client, base, name string) float64 {
	t.Helper()
	r := Do(t, hc, http.MethodGet, base+"/metrics", nil, "")
	if r.Status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", r.Status, r.Body)
	}
	for line := range strings.SplitSeq(string(r.Body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in %s/metrics", name, base)
	return 0
}
