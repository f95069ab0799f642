package loadgen

import (
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		out := make([]time.Duration, len(vs))
		for i, v := range vs {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"one sample", ms(7), 50, 7 * time.Millisecond},
		{"one sample p99", ms(7), 99, 7 * time.Millisecond},
		{"median of odd", ms(1, 2, 3), 50, 2 * time.Millisecond},
		{"median of even is the lower", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 10 is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"p90 of 10", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
		{"p100", ms(1, 5, 9), 100, 9 * time.Millisecond},
		{"tiny p is the min", ms(1, 5, 9), 0.001, 1 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestLatenciesSummary(t *testing.T) {
	var a, b Latencies
	// 1..100 ms, added out of order and split over two readers.
	for i := 100; i >= 1; i-- {
		l := &a
		if i%3 == 0 {
			l = &b
		}
		l.Add(time.Duration(i) * time.Millisecond)
	}
	a.Merge(&b)
	if a.Len() != 100 {
		t.Fatalf("Len = %d after merge, want 100", a.Len())
	}
	got := a.Summary()
	want := LatencySummary{Count: 100, P50: 50, P99: 99, Max: 100, Mean: 50.5}
	if got != want {
		t.Errorf("Summary = %+v, want %+v", got, want)
	}
}

func TestLatenciesSummaryTail(t *testing.T) {
	// 990 fast deliveries and 10 slow ones: p99 must land on the slow tail's
	// first sample, p50 among the fast.
	var l Latencies
	for range 990 {
		l.Add(2 * time.Millisecond)
	}
	for i := range 10 {
		l.Add(time.Duration(300+i) * time.Millisecond)
	}
	s := l.Summary()
	if s.P50 != 2 || s.P99 != 2 || s.Max != 309 {
		t.Errorf("Summary = %+v, want p50 2, p99 2 (rank 990), max 309", s)
	}
	l.Add(400 * time.Millisecond) // now 11 slow of 1001: rank 991 is slow
	if s := l.Summary(); s.P99 != 300 {
		t.Errorf("p99 = %v after one more slow sample, want 300", s.P99)
	}
}

func TestLatenciesEmpty(t *testing.T) {
	var l Latencies
	if s := l.Summary(); s != (LatencySummary{}) {
		t.Errorf("Summary of nothing = %+v, want zero", s)
	}
}
