package loadgen

import (
	"syscall"
	"testing"
)

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080", true},
		{"http://127.1.2.3:80", true},
		{"http://localhost:8080", true},
		{"http://[::1]:8080", true},
		{"http://127.0.0.1:8080/", true},
		{"http://10.0.0.1:8080", false},
		{"http://192.168.1.1", false},
		{"http://example.com:8080", false},
		{"http://localhost.example.com", false},
		{"http://[::2]:80", false},
		{"https://127.0.0.1:8443", false},
		{"http://127.0.0.1:8080/events", false},
		{"http://user@127.0.0.1:8080", false},
		{"127.0.0.1:8080", false},
	}
	for _, tt := range tests {
		_, err := CheckLoopback(tt.url)
		if (err == nil) != tt.ok {
			t.Errorf("CheckLoopback(%q) error = %v, want ok %v", tt.url, err, tt.ok)
		}
	}
}

func TestRaiseFileLimit(t *testing.T) {
	got, err := RaiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if got != lim.Max || lim.Cur != lim.Max {
		t.Errorf("RaiseFileLimit = %d; limit now %d of hard %d, want both at the hard limit", got, lim.Cur, lim.Max)
	}
}
