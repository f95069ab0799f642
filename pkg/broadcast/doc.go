// Package broadcast is the xhrsse hub: channels that tick, sessions with their
// tuned set and history, chat, published events, bulk transfers, and the
// streams that write a session's history as an SSE response.
//
// Where things are:
//
//	hub.go       Hub, New, Close, the session table, expiry
//	options.go   Option and the With… settings
//	channel.go   ChannelConfig, the default channels, repertoires
//	clock.go     the tick schedule and the tick fan-out (deliverTicks)
//	session.go   Session: tuning, bulk requests, the ring it appends to
//	replay.go    event and ring: a session's history, which is its send queue
//	chat.go      Hub.Chat and its fan-out; publish.go, published channels
//	fanout.go    writeDirect: a fan-out writes parked streams itself, on up to GOMAXPROCS goroutines
//	priority.go  chat's fan-out first: the wheel and the ticks' writes wait for it
//	bulk.go      transfers and their chunks
//	attach.go    Position, Hub.Attach, Hub.Open: a stream joins its session
//	stream.go    Stream.Run: wake, linger, gather, bye
//	writer.go    streamWriter: the buffer, the lazy deadline, the flush
//	pacing.go    bulk pacing by the connection's backlog; wheel.go, the flush wheel
//	handover.go  SessionState: Export, Import, Withdraw, Recover (pkg/cluster)
//	relay.go     Relay, the cluster's hook; rate.go, RateError and Allow
//	errors.go    the errors the HTTP layer maps to statuses; stats.go, Snapshot
//
// Ownership: the clock goroutine owns the tick schedule; Hub.mu guards the
// session table and the per-channel listener sets; each session's mutex
// guards its history ring, tuned set and transfers; each stream's goroutine
// (the /events handler) owns its ResponseWriter and buffers. Lock order:
// chat.mu, then pub.mu, then Hub.mu, then Session.mu.
package broadcast
