package loadgen

// nodeReports breaks a multi-node run down by target: streams opened, held
// and dropped, ticks over the window and the chat latency seen on each
// node's streams. Called by Run after every reader has stopped.
func nodeReports(targets []target, streams []*stream) []NodeReport {
	out := make([]NodeReport, len(targets))
	lats := make([]Latencies, len(targets))
	for i, t := range targets {
		out[i].URL = t.base
	}
	for _, st := range streams {
		n := &out[st.node]
		n.Opened++
		if st.endReason != "" {
			n.Drops++
		}
		if !st.endedInWindow {
			n.Held++
		}
		n.Ticks += st.windowTicks[1] - st.windowTicks[0]
		lats[st.node].Merge(&st.lat)
	}
	for i := range out {
		out[i].ChatLatency = lats[i].Summary()
	}
	return out
}
