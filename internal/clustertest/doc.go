// Package clustertest runs a whole xhrsse cluster inside a test: an
// embedded nats-server broker with JetStream (StartBroker) and nodes, each a
// hub, the HTTP API, a cluster.Node and an http.Server wired as cmd/server
// wires them (StartNode), all on 127.0.0.1. A node can crash (Kill) or shut
// down as on SIGTERM (Shutdown); the broker can stop and come back on its
// port with its store (Stop, Start). Everything started is stopped by the
// test's cleanups.
//
// It serves the tests of pkg/cluster and the cluster soak of internal/soak;
// nothing else should import it.
package clustertest
