package server

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
)

// A ClusterNode is this process's membership of a cluster (pkg/cluster's
// Node, over NATS), as Start drives it: it seeds the hub's ticks and relays
// its chat (broadcast.Relay), lets the API answer for sessions that live on
// other nodes, and at shutdown waits for this hub's sessions to be taken
// elsewhere.
type ClusterNode interface {
	broadcast.Relay
	// Seed is the cluster's seed, so that every node ticks alike.
	Seed() [32]byte
	// Start puts the node to work for hub, running the requests forwarded
	// from other nodes on local (the API).
	Start(hub *broadcast.Hub, local http.Handler) error
	// Name is this node's name, sent in X-Xhrsse-Node.
	Name() string
	// Register makes a new session reachable from the other nodes; it
	// returns before the session's id is handed to a client.
	Register(ctx context.Context, s *broadcast.Session) error
	// Forward runs r, whose body was read into body, on the node holding
	// session id and writes that node's answer to w. False: no node has
	// the session.
	Forward(w http.ResponseWriter, r *http.Request, id string, body []byte) bool
	// Take brings session id here for a stream (broadcast.ErrUnknownSession
	// if no node has it).
	Take(ctx context.Context, id string, p broadcast.Position) (*broadcast.Session, error)
	// Forwarded reports whether r was forwarded by another node: it is not
	// forwarded again.
	Forwarded(r *http.Request) bool
	// Collectors are the node's metrics, for /metrics.
	Collectors() []prometheus.Collector
	// Handover waits until every session of the hub has been taken by
	// another node or ctx ends, and returns how many are left.
	Handover(ctx context.Context) int
	// Close leaves the cluster.
	Close() error
}
