package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// units are the size suffixes the bulk prompt accepts: SI (powers of 1000)
// and IEC (powers of 1024), case-insensitive; a bare number is bytes.
var units = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9},
	{"k", 1e3}, {"m", 1e6}, {"g", 1e9},
	{"b", 1},
}

// parseSize reads a size such as "20MB", "512KiB", "1.5 GiB" or "1000".
func parseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, errors.New("empty size")
	}
	mult := 1.0
	for _, u := range units {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("not a size (try 20MB, 512KiB, 1000)")
	}
	if f < 0 {
		return 0, errors.New("size is negative")
	}
	n := f * mult
	if n > math.MaxInt64/2 {
		return 0, errors.New("size is too large")
	}
	return int64(math.Round(n)), nil
}

// formatBytes writes n in IEC units with one decimal ("20.0 MiB").
func formatBytes(n float64) string {
	const k = 1024
	switch {
	case n < k:
		return fmt.Sprintf("%.0f B", n)
	case n < k*k:
		return fmt.Sprintf("%.1f KiB", n/k)
	case n < k*k*k:
		return fmt.Sprintf("%.1f MiB", n/(k*k))
	default:
		return fmt.Sprintf("%.1f GiB", n/(k*k*k))
	}
}
