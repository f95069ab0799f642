// Package soak proves the reliability promises of docs/RELIABILITY.md under
// load: streams cut at random points while channels tick, chat flows and bulk
// transfers run must lose nothing (every event id in order, no duplicate, no
// hole but an announced gap, every transfer verified or failed by a gap); a
// reader that stops reading must not slow the others nor grow the server's
// memory past what its replay buffer may hold; a thousand idle streams must
// each get every chat.
//
// Its only code outside tests is Proxy (and StartProxy, its test helper), a
// TCP relay (or balancer, given several servers) that cuts the connections
// through it in the ways networks do; the tests of pkg/client, web, cmd/tui
// and internal/proxytest use it too, so there is one such proxy to trust.
// Everything else is tests against a real server
// (internal/testserver) on 127.0.0.1. The soak runs for XHRSSE_SOAK (a Go duration, default 15s) or the -soak flag:
//
//	XHRSSE_SOAK=5m go test -race -run Soak -timeout 30m ./internal/soak
//
// The cluster soak (TestSoakCluster*) runs the same clients and checks
// against three nodes of a cluster (internal/clustertest), the Proxy
// spreading connections over them, while one node dies or shuts down; the
// broker faults (TestSoakBrokerRestarts, TestSoakNodesBrokerKilled,
// TestSoakChatLeaderChange, TestSoakNodePartitioned) do the same on three
// clustered brokers while a broker stops, a stream leader steps down or a
// node loses every broker, and log how soon each client hears again. They
// run for XHRSSE_CLUSTER_SOAK (default 5s):
//
//	XHRSSE_CLUSTER_SOAK=3m go test -race -count=1 -run SoakCluster -timeout 30m ./internal/soak
package soak
