package loadgen

import (
	"fmt"
	"net"
	"net/url"
	"syscall"
)

// RaiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit, so that
// one process can hold thousands of connections, and returns the new soft
// limit. (Go already does this at start-up on Linux; doing it explicitly
// makes the limit visible in the report and works whatever the runtime does.)
func RaiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("loadgen: getrlimit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("loadgen: setrlimit: %w", err)
		}
	}
	return lim.Cur, nil
}

// CheckLoopback refuses any target that is not this machine's loopback:
// thousands of streams pointed at somebody else's server would be an attack,
// not a benchmark. It accepts http URLs whose host is "localhost", an
// address in 127.0.0.0/8, or ::1. Names other than localhost are refused
// rather than resolved, so DNS cannot redirect the load.
func CheckLoopback(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("loadgen: target %q: %w", raw, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("loadgen: target %q: only http:// is supported", raw)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("loadgen: target %q: want http://host:port with nothing after", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return u, nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("loadgen: target %q is not loopback (127.0.0.0/8, ::1, localhost): refused", raw)
	}
	return u, nil
}
