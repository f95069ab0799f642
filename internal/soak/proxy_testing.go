package soak

import "testing"

// StartProxy is NewProxy for a test: it fails t if the proxy cannot start
// and closes the proxy when the test ends.
func StartProxy(t testing.TB, targets []string, opts ...ProxyOption) *Proxy {
	t.Helper()
	p, err := NewProxy(targets, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}
