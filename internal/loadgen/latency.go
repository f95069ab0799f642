package loadgen

import (
	"math"
	"slices"
	"time"
)

// Latencies collects delivery latency samples. Each stream reader keeps its
// own (so recording a sample costs an append, no lock); Run merges them when
// the readers have stopped. The zero value is empty and ready to use.
type Latencies struct {
	samples []time.Duration
}

// Add records one sample.
func (l *Latencies) Add(d time.Duration) { l.samples = append(l.samples, d) }

// Merge appends every sample of o.
func (l *Latencies) Merge(o *Latencies) { l.samples = append(l.samples, o.samples...) }

// Len is the number of samples.
func (l *Latencies) Len() int { return len(l.samples) }

// LatencySummary describes a set of samples in milliseconds. Percentiles are
// nearest-rank: P99 is the smallest sample that at least 99 % of the samples
// do not exceed, so it is always a latency that was actually observed.
type LatencySummary struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

// Summary sorts the samples and summarises them; with no samples every
// figure is zero.
func (l *Latencies) Summary() LatencySummary {
	n := len(l.samples)
	if n == 0 {
		return LatencySummary{}
	}
	slices.Sort(l.samples)
	var sum float64
	for _, d := range l.samples {
		sum += float64(d)
	}
	return LatencySummary{
		Count: n,
		P50:   ms(Percentile(l.samples, 50)),
		P99:   ms(Percentile(l.samples, 99)),
		Max:   ms(l.samples[n-1]),
		Mean:  sum / float64(n) / float64(time.Millisecond),
	}
}

// Percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, which must be sorted ascending and non-empty: the sample at rank
// ceil(p/100 * n).
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
