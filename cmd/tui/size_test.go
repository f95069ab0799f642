package main

import "testing"

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"1000", 1000, false},
		{"0", 0, false},
		{"20MB", 20_000_000, false},
		{"20mb", 20_000_000, false},
		{"512KiB", 512 << 10, false},
		{"1.5 GiB", 3 << 29, false},
		{"3k", 3000, false},
		{"7 B", 7, false},
		{" 2MiB ", 2 << 20, false},
		{"", 0, true},
		{"MB", 0, true},
		{"abc", 0, true},
		{"-5", 0, true},
		{"1e30", 0, true},
		{"NaN", 0, true},
		{"Inf", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseSize(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && got != tt.want {
			t.Errorf("parseSize(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	tests := map[float64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 20 << 20: "20.0 MiB", 3 << 30: "3.0 GiB"}
	for in, want := range tests {
		if got := formatBytes(in); got != want {
			t.Errorf("formatBytes(%v) = %q, want %q", in, got, want)
		}
	}
}
