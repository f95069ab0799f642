package routeport

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeBelowTheEphemeralRange: the port is free and below the range
// the kernel takes local ports of outgoing connections from.
func TestFreeBelowTheEphemeralRange(t *testing.T) {
	start := ephemeralStart()
	for range 20 {
		p, err := Free("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if p >= start || p < 1024 {
			t.Fatalf("port %d: want it in [1024, %d)", p, start)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d not free: %v", p, err)
		}
		ln.Close()
	}
}
