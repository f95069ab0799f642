package broadcast

import "sync/atomic"

// counters are the hub's monotonic totals since it started, as atomics
// (any goroutine adds to them); Snapshot reads them for the metrics endpoint.
type counters struct {
	sessionsOpened  atomic.Int64
	sessionsExpired atomic.Int64
	resumes         atomic.Int64
	gaps            atomic.Int64 // gap events sent
	gapEvents       atomic.Int64 // events they reported missed
	events          atomic.Int64 // events written to streams
	bytesOut        atomic.Int64
	chats           atomic.Int64
	chatDeliveries  atomic.Int64
	chatLimited     atomic.Int64
	directWrites    atomic.Int64 // writes a fan-out or the wheel made for a stream
	directHandoffs  atomic.Int64 // direct writes the socket took only part of
	bulkStarted     atomic.Int64
	bulkDone        atomic.Int64
	bulkChunks      atomic.Int64
	ticks           []atomic.Int64 // per channel index
	tickDeliveries  []atomic.Int64 // per channel index
}

func (s *counters) init(channels int) {
	s.ticks = make([]atomic.Int64, channels)
	s.tickDeliveries = make([]atomic.Int64, channels)
}

// A Snapshot is a copy of the counters at one moment.
type Snapshot struct {
	Sessions, Streams                        int
	SessionsOpened, SessionsExpired, Resumes int64
	Gaps, GapEvents                          int64
	Events, BytesOut                         int64
	Chats, ChatDeliveries, ChatLimited       int64
	// DirectWrites counts the writes a chat's fan-out or the flush wheel
	// made for a stream itself, without waking its goroutine;
	// DirectHandoffs, those the socket took only part of, the rest left to
	// the goroutine.
	DirectWrites, DirectHandoffs      int64
	BulkStarted, BulkDone, BulkChunks int64
	// Ticks and TickDeliveries are by ticking channel's name.
	Ticks, TickDeliveries map[string]int64
	// Published and PublishDeliveries are by published channel's name:
	// events published, and those queued to sessions.
	Published, PublishDeliveries map[string]int64
}

// Snapshot reads the hub's counters.
func (h *Hub) Snapshot() Snapshot {
	st := &h.stats
	snap := Snapshot{
		Sessions: h.SessionCount(), Streams: h.StreamCount(),
		SessionsOpened: st.sessionsOpened.Load(), SessionsExpired: st.sessionsExpired.Load(),
		Resumes: st.resumes.Load(), Gaps: st.gaps.Load(), GapEvents: st.gapEvents.Load(),
		Events: st.events.Load(), BytesOut: st.bytesOut.Load(),
		Chats: st.chats.Load(), ChatDeliveries: st.chatDeliveries.Load(), ChatLimited: st.chatLimited.Load(),
		DirectWrites: st.directWrites.Load(), DirectHandoffs: st.directHandoffs.Load(),
		BulkStarted: st.bulkStarted.Load(), BulkDone: st.bulkDone.Load(), BulkChunks: st.bulkChunks.Load(),
		Ticks: map[string]int64{}, TickDeliveries: map[string]int64{},
	}
	for _, c := range h.tickers {
		snap.Ticks[c.Name] = st.ticks[c.index].Load()
		snap.TickDeliveries[c.Name] = st.tickDeliveries[c.index].Load()
	}
	h.publishedSnapshot(&snap)
	return snap
}
