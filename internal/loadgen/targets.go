package loadgen

import (
	"fmt"
	"net"
	"strings"
)

// A target is one node of the server under load: a cluster has several,
// all serving the same API.
type target struct {
	base string // http://host:port
	host string // host:port
}

// parseTargets reads Config.URL: one base URL or several separated by
// commas, each loopback (CheckLoopback) and none twice.
func parseTargets(raw string) ([]target, error) {
	var ts []target
	seen := map[string]bool{}
	for part := range strings.SplitSeq(raw, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		u, err := CheckLoopback(part)
		if err != nil {
			return nil, err
		}
		if seen[u.Host] {
			return nil, fmt.Errorf("loadgen: target %s given twice", u.Host)
		}
		seen[u.Host] = true
		ts = append(ts, target{base: "http://" + u.Host, host: u.Host})
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("loadgen: no target URL in %q", raw)
	}
	return ts, nil
}

// streamNode is the target of stream i: round robin, so every node holds
// the same share.
func streamNode(i, nodes int) int { return i % nodes }

// postNode is where stream i's session sends its POSTs (create, chat,
// bulk): its stream's node, or with anywhere one of the others, in turn, so
// that every POST has to cross the broker to reach the stream's owner.
func postNode(i, nodes int, anywhere bool) int {
	node := streamNode(i, nodes)
	if !anywhere || nodes < 2 {
		return node
	}
	return (node + 1 + (i/nodes)%(nodes-1)) % nodes
}

// allIPv4 reports whether every target's host is an IPv4 address, so that
// the streams' source addresses can be spread over 127.0.0.x.
func allIPv4(ts []target) bool {
	for _, t := range ts {
		h, _, err := net.SplitHostPort(t.host)
		ip := net.ParseIP(h)
		if err != nil || ip == nil || ip.To4() == nil {
			return false
		}
	}
	return true
}

// bases lists the targets' base URLs.
func bases(ts []target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.base
	}
	return out
}
