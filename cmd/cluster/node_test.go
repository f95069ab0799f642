package main

import "testing"

func TestListeningLine(t *testing.T) {
	tests := []struct {
		line, want string
	}{
		{`time=2026-11-28T03:00:00.000Z level=INFO msg=listening url=http://127.0.0.1:40123/ channels=3`, "http://127.0.0.1:40123"},
		{`time=x level=INFO msg=listening url=http://127.0.0.1:40123/`, "http://127.0.0.1:40123"},
		{`level=INFO msg=listening url=https://127.0.0.1:8443/ node=node1`, "https://127.0.0.1:8443"},
		{`level=INFO msg=listening url=http://127.0.0.1:9`, "http://127.0.0.1:9"},
		{`level=INFO msg="shutting down" timeout=10s`, ""},
		{`level=INFO msg=pprof url=http://127.0.0.1:6060/debug/pprof/`, ""},
	}
	for _, tt := range tests {
		got := ""
		if m := listening.FindStringSubmatch(tt.line); m != nil {
			got = m[1]
		}
		if got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.line, got, tt.want)
		}
	}
}
