// Package proxytest proves the claim of xhrsse's design, that one SSE stream
// plus plain POSTs works where WebSockets do not, on the paths real
// deployments take: behind nginx run from deploy/nginx.conf, behind proxies
// that cut idle or long-lived connections, over HTTP/2, and with HTTP/1.0
// clients such as curl --http1.0 and wget. It has no code of its own, only
// tests: every test runs a real server (internal/testserver) on 127.0.0.1
// and real clients, programs and proxies in front of it.
package proxytest
