package cluster

import (
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics count what the node does for the cluster, for /metrics.
type metrics struct {
	forwarded   prometheus.Counter // POSTs sent to the session's node
	served      prometheus.Counter // POSTs run here for another node
	taken       prometheus.Counter // sessions taken over from another node
	handedOver  prometheus.Counter // sessions given to another node
	recovered   prometheus.Counter // sessions carried on after their node died
	unavailable prometheus.Counter // requests answered 503: broker unreachable
	parked      prometheus.Counter // sessions taken off the hub while no broker was reachable
}

func newMetrics() metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "xhrsse_cluster_" + name, Help: help})
	}
	return metrics{
		forwarded:   c("forwarded_total", "Requests forwarded to the node holding their session."),
		served:      c("served_total", "Requests forwarded here by other nodes and run."),
		taken:       c("sessions_taken_total", "Sessions taken over from another node for a stream that arrived here."),
		handedOver:  c("sessions_handed_over_total", "Sessions handed over to another node."),
		recovered:   c("sessions_recovered_total", "Sessions recovered here from their record after their node died."),
		unavailable: c("unavailable_total", "Requests for a session elsewhere answered 503: broker unreachable, or the session kept moving."),
		parked:      c("sessions_parked_total", "Sessions taken off this node while it had no broker, lest another node recover them meanwhile."),
	}
}

// Collectors are the node's metrics, for the server's /metrics.
func (n *Node) Collectors() []prometheus.Collector {
	m := n.metrics
	connected := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "xhrsse_cluster_broker_connected", Help: "1 while the node is connected to the broker.",
	}, func() float64 {
		if n.nc.Status() == nats.CONNECTED {
			return 1
		}
		return 0
	})
	return []prometheus.Collector{m.forwarded, m.served, m.taken, m.handedOver, m.recovered, m.unavailable, m.parked, connected}
}
