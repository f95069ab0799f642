// Package routeport picks ports for the routes between the NATS brokers
// that xhrsse starts itself (make cluster, and the cluster tests).
//
// A route port must be known before its broker listens on it: every broker
// is told all of them, and dials those not listening yet again and again.
// Each dial gets a local port from the kernel's ephemeral range, and on
// loopback a dial whose local port happens to be the port it dials connects
// to itself (TCP's simultaneous open). The port is then taken, and the
// broker meant for it never starts. A port below the ephemeral range is
// never handed out as a local port, so it cannot be taken that way.
package routeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// Free returns a port on host that was free a moment ago and lies below
// the kernel's ephemeral range.
func Free(host string) (int, error) {
	hi := ephemeralStart() - 1
	lo := max(hi-12000, 1024)
	var err error
	for range 100 {
		p := lo + rand.IntN(hi-lo+1)
		var ln net.Listener
		if ln, err = net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p))); err == nil {
			ln.Close()
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free route port below %d: %w", hi+1, err)
}

// ephemeralStart is the first port of the kernel's ephemeral range:
// Linux's setting, or the range's usual start elsewhere.
func ephemeralStart() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(data)); len(f) == 2 {
			if p, err := strconv.Atoi(f[0]); err == nil && p > 2048 {
				return p
			}
		}
	}
	return 32768
}
