// Package clustertest runs a whole xhrsse cluster inside a test: an
// embedded nats-server broker with JetStream (StartBroker), or three
// clustered over loopback routes with every stream and bucket on all three
// (StartBrokers), and nodes, each a
// hub, the HTTP API, a cluster.Node and an http.Server wired as cmd/server
// wires them (StartNode), all on 127.0.0.1. A node can crash (Kill) or shut
// down as on SIGTERM (Shutdown); a broker can stop and come back on its
// port with its store (Stop, Start), or, run in a child process
// (StartBrokersWithChild), die by SIGKILL (Kill); and a stream's JetStream
// leader can step down (Brokers.StepDown). Everything started is stopped by the
// test's cleanups.
//
// It serves the tests of pkg/cluster and the cluster soak of internal/soak;
// nothing else should import it.
package clustertest
