package server

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
)

// metrics exports the hub's counters, read at scrape time so the hot path
// pays only its atomic adds, plus the POST latency histogram.
type metrics struct {
	hub     *broadcast.Hub
	post    *prometheus.HistogramVec
	pubReqs *prometheus.CounterVec
	desc    map[string]*prometheus.Desc
}

func newMetrics(reg *prometheus.Registry, hub *broadcast.Hub) *metrics {
	m := &metrics{
		hub: hub,
		post: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "xhrsse_post_duration_seconds",
			Help:    "Time to answer a POST, by route.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"route"}),
		pubReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xhrsse_publish_requests_total",
			Help: "Publish requests (POST /channels/NAME/events), by status of the answer.",
		}, []string{"status"}),
		desc: map[string]*prometheus.Desc{},
	}
	add := func(name, help string, labels ...string) {
		m.desc[name] = prometheus.NewDesc(name, help, labels, nil)
	}
	add("xhrsse_streams", "Open SSE streams.")
	add("xhrsse_sessions", "Live sessions.")
	add("xhrsse_sessions_opened_total", "Sessions opened.")
	add("xhrsse_sessions_expired_total", "Sessions removed after their TTL.")
	add("xhrsse_resumes_total", "Streams opened with a Last-Event-ID.")
	add("xhrsse_gaps_total", "Gap events sent (a reader resumed or fell behind past the replay window).")
	add("xhrsse_gap_events_total", "Events reported missed by gap events.")
	add("xhrsse_events_sent_total", "Events written to streams.")
	add("xhrsse_bytes_out_total", "Bytes written to streams.")
	add("xhrsse_chat_messages_total", "Chat messages accepted.")
	add("xhrsse_chat_deliveries_total", "Chat messages queued to sessions.")
	add("xhrsse_chat_rate_limited_total", "Chat POSTs refused with 429.")
	add("xhrsse_bulk_started_total", "Bulk transfers accepted.")
	add("xhrsse_bulk_completed_total", "Bulk transfers whose last event was queued.")
	add("xhrsse_bulk_chunks_total", "Bulk chunk events written.")
	add("xhrsse_channel_ticks_total", "Ticks of a channel.", "channel")
	add("xhrsse_channel_deliveries_total", "Ticks queued to sessions, by channel.", "channel")
	add("xhrsse_published_events_total", "Events published, by published channel.", "channel")
	add("xhrsse_published_deliveries_total", "Published events queued to sessions, by channel.", "channel")
	reg.MustRegister(m, m.post, m.pubReqs)
	return m
}

func (m *metrics) publishRequest(status int) {
	m.pubReqs.WithLabelValues(strconv.Itoa(status)).Inc()
}

func (m *metrics) observePost(route string, d time.Duration) {
	m.post.WithLabelValues(route).Observe(d.Seconds())
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range m.desc {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	s := m.hub.Snapshot()
	gauge := func(name string, v int) {
		ch <- prometheus.MustNewConstMetric(m.desc[name], prometheus.GaugeValue, float64(v))
	}
	counter := func(name string, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(m.desc[name], prometheus.CounterValue, float64(v), labels...)
	}
	gauge("xhrsse_streams", s.Streams)
	gauge("xhrsse_sessions", s.Sessions)
	counter("xhrsse_sessions_opened_total", s.SessionsOpened)
	counter("xhrsse_sessions_expired_total", s.SessionsExpired)
	counter("xhrsse_resumes_total", s.Resumes)
	counter("xhrsse_gaps_total", s.Gaps)
	counter("xhrsse_gap_events_total", s.GapEvents)
	counter("xhrsse_events_sent_total", s.Events)
	counter("xhrsse_bytes_out_total", s.BytesOut)
	counter("xhrsse_chat_messages_total", s.Chats)
	counter("xhrsse_chat_deliveries_total", s.ChatDeliveries)
	counter("xhrsse_chat_rate_limited_total", s.ChatLimited)
	counter("xhrsse_bulk_started_total", s.BulkStarted)
	counter("xhrsse_bulk_completed_total", s.BulkDone)
	counter("xhrsse_bulk_chunks_total", s.BulkChunks)
	for name, v := range s.Ticks {
		counter("xhrsse_channel_ticks_total", v, name)
	}
	for name, v := range s.TickDeliveries {
		counter("xhrsse_channel_deliveries_total", v, name)
	}
	for name, v := range s.Published {
		counter("xhrsse_published_events_total", v, name)
	}
	for name, v := range s.PublishDeliveries {
		counter("xhrsse_published_deliveries_total", v, name)
	}
}
