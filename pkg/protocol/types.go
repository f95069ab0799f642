// Package protocol is the Go form of docs/PROTOCOL.md: event names, the JSON
// bodies of requests, responses and events, the error body, the limits, the
// one SSE frame encoder (and a spec-following parser for tests and tools), and
// the reading of a Retry-After header.
//
// It holds no connections and no state; the server, the clients and the load
// generator all speak through it so that the wire contract lives in one place.
package protocol

import (
	"encoding/json"
	"time"
)

// Limits and defaults named by PROTOCOL.md. Flags may change the ones marked
// "default"; the others are part of the contract.
const (
	// DefaultMaxBody is the default limit on a POST body, in bytes.
	DefaultMaxBody = 16 << 10
	// DefaultMaxChatText is the default limit on chat text, in characters (runes).
	DefaultMaxChatText = 500
	// MaxChatName is the limit on a chat name, in characters (runes).
	MaxChatName = 32
	// DefaultChatRate and DefaultChatBurst set the per-session chat token bucket.
	DefaultChatRate  = 2.0
	DefaultChatBurst = 10
	// ChatHistory is how many chat messages a new session is replayed.
	ChatHistory = 50
	// BulkChunkSize is the largest raw (pre-base64) payload of one bulk event.
	BulkChunkSize = 48 << 10
	// ReplayMinEvents and ReplayMinAge: a session keeps at least this many of
	// its events, or at least this much of its history, whichever is more.
	ReplayMinEvents = 1024
	ReplayMinAge    = 30 * time.Second
	// RetryMillis is the reconnection delay the stream announces with "retry:".
	RetryMillis = 2000
	// PingInterval is the silence after which the stream sends ": ping".
	PingInterval = 15 * time.Second
	// DefaultSessionTTL is how long a session outlives its last stream.
	DefaultSessionTTL = 60 * time.Second
	// SessionIDBytes is the number of random bytes in a session id (128 bits).
	SessionIDBytes = 16
	// MaxPublishData is the largest data of one published event, in bytes.
	MaxPublishData = 64 << 10
	// MaxPublishBody is the largest JSON body of a publish: room for
	// MaxPublishData of data, however it is escaped.
	MaxPublishBody = 6*MaxPublishData + 1024
	// DefaultPublishRate is the default allowance of a published channel, in
	// events a second; a second's worth may come at once.
	DefaultPublishRate = 1000.0
)

// Kinds of channel in GET /channels.
const (
	// KindTicker: the server makes the events up (random characters at a rate).
	KindTicker = "ticker"
	// KindPublished: the events are what publishers POST to
	// /channels/NAME/events.
	KindPublished = "published"
)

// Event names. A channel's ticks use the channel's own name as the event name.
const (
	EventSession = "session"
	EventTuned   = "tuned"
	EventChat    = "chat"
	EventBulk    = "bulk"
	EventBulkEnd = "bulk-end"
	EventGap     = "gap"
	EventBye     = "bye"
)

// Reasons carried by a bye event.
const (
	ByeShutdown = "shutdown"
	ByeReplaced = "replaced"
	ByeExpired  = "expired"
)

// Default channel names.
const (
	ChannelOne   = "one"
	ChannelTwo   = "two"
	ChannelThree = "three"
)

// Channel describes one channel in GET /channels.
type Channel struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	// Kind is KindTicker or KindPublished. A published channel has no Rate,
	// Repertoire or Width (all zero): its events are lines of any text.
	Kind string  `json:"kind"`
	Rate float64 `json:"rate"` // ticks per second
	// Repertoire lists every character the channel may send, in order.
	Repertoire string `json:"repertoire"`
	// Width is the terminal width in cells of every character of the channel.
	Width int `json:"width"`
}

// Published reports whether c's events come from publishers.
func (c Channel) Published() bool { return c.Kind == KindPublished }

// File describes one file in GET /files.
type File struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

// CreateSession is the optional body of POST /sessions.
type CreateSession struct {
	Channels []string `json:"channels,omitempty"`
}

// SessionCreated answers POST /sessions.
type SessionCreated struct {
	Session  string   `json:"session"`
	Channels []string `json:"channels"`
	Events   string   `json:"events"`
}

// Tune is the body of POST /sessions/{id}/channels: either Channel with On, or
// Channels (the whole new set; an empty list tunes everything out). A nil
// Channels means the field is absent (omitzero leaves it out when encoding,
// and an absent or null field decodes to nil); a non-nil empty slice is the
// list [] and survives both ways, which omitempty would not allow.
type Tune struct {
	Channel  string   `json:"channel,omitempty"`
	On       *bool    `json:"on,omitempty"`
	Channels []string `json:"channels,omitzero"`
}

// Tuned answers POST /sessions/{id}/channels and is the data of a tuned event.
type Tuned struct {
	Channels []string `json:"channels"`
}

// ChatPost is the body of POST /sessions/{id}/chat.
type ChatPost struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

// ChatAccepted answers POST /sessions/{id}/chat.
type ChatAccepted struct {
	ID int64 `json:"id"`
}

// Chat is the data of a chat event.
type Chat struct {
	ID      int64     `json:"id"`
	Name    string    `json:"name"`
	Text    string    `json:"text"`
	At      time.Time `json:"at"`
	History bool      `json:"history,omitempty"`
}

// BulkPost is the body of POST /sessions/{id}/bulk: exactly one of Bytes
// (generated data) or File (a name from GET /files).
type BulkPost struct {
	Bytes *int64 `json:"bytes,omitempty"`
	File  string `json:"file,omitempty"`
}

// BulkAccepted answers POST /sessions/{id}/bulk.
type BulkAccepted struct {
	Transfer string `json:"transfer"`
	Bytes    int64  `json:"bytes"`
	Chunks   int    `json:"chunks"`
	SHA256   string `json:"sha256"`
}

// BulkChunk is the data of a bulk event. Data is base64 (standard, padded) in
// JSON, as encoding/json writes a []byte.
type BulkChunk struct {
	Transfer string `json:"transfer"`
	Seq      int    `json:"seq"`
	Chunks   int    `json:"chunks"`
	Data     []byte `json:"data"`
}

// BulkEnd is the data of a bulk-end event.
type BulkEnd struct {
	Transfer string `json:"transfer"`
	Bytes    int64  `json:"bytes"`
	SHA256   string `json:"sha256"`
}

// SessionEvent is the data of the session event that opens every connection.
type SessionEvent struct {
	Session  string   `json:"session"`
	Channels []string `json:"channels"`
	Resumed  bool     `json:"resumed"`
}

// Gap is the data of a gap event: Missed events could not be replayed.
type Gap struct {
	Missed uint64 `json:"missed"`
}

// Bye is the data of a bye event, the last event of a connection.
type Bye struct {
	Reason string `json:"reason"`
}

// PublishPost is the JSON body of POST /channels/{name}/events: one event
// whose data is Data (line ends allowed).
type PublishPost struct {
	Data string `json:"data"`
}

// PublishAnswer answers POST /channels/{name}/events: Events is how many
// events of the request were published (202 for JSON, 200 for text). A
// publish refused part way (an error status) answers PublishError.
type PublishAnswer struct {
	Events int `json:"events"`
}

// PublishError is the body of a non-2xx answer to a publish: the error, and
// how many events of the request were published before it (the lines of a
// text body before the bad one stay published).
type PublishError struct {
	Error  string `json:"error"`
	Events int    `json:"events"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}

// MarshalJSON writes a nil Channels as [] (not null): PROTOCOL.md promises a
// list, and a new session has no channel tuned.
func (s SessionCreated) MarshalJSON() ([]byte, error) {
	type plain SessionCreated
	s.Channels = nonNil(s.Channels)
	return json.Marshal(plain(s))
}

// MarshalJSON writes a nil Channels as [] (not null), as PROTOCOL.md shows.
func (t Tuned) MarshalJSON() ([]byte, error) {
	type plain Tuned
	t.Channels = nonNil(t.Channels)
	return json.Marshal(plain(t))
}

// MarshalJSON writes a nil Channels as [] (not null), as PROTOCOL.md shows.
func (s SessionEvent) MarshalJSON() ([]byte, error) {
	type plain SessionEvent
	s.Channels = nonNil(s.Channels)
	return json.Marshal(plain(s))
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Chunks returns how many bulk events carry n bytes. An empty transfer has
// none: its bulk-end event alone completes it.
func Chunks(n int64) int {
	if n <= 0 {
		return 0
	}
	return int((n + BulkChunkSize - 1) / BulkChunkSize)
}

// ShortID shortens a session id for logs and screens: enough to tell
// sessions apart, too little to steer one (the whole id is a capability).
func ShortID(id string) string {
	if len(id) > 6 {
		return id[:6] + "…"
	}
	return id
}
