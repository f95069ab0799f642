package client

import (
	"fmt"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// Kind says what an Event is and which of its fields are set.
type Kind int

// The kinds of Event. Every kind but State is one SSE event of the stream.
const (
	// State reports a change of the connection (Event.State, Attempt, Err);
	// the session event that opens a connection is reported as State
	// Connected, Resumed or NewSession with Event.Session set.
	State Kind = iota
	// Tick is a channel's characters: Event.Channel and Event.Text. Any
	// event name the protocol does not reserve is taken for a channel's.
	// Text is what the server sent; a display should still check it (see
	// protocol.SafeRune) rather than trust it.
	Tick
	// Tuned is a change of the tuned set: Event.Tuned.
	Tuned
	// Chat is a chat message: Event.Chat.
	Chat
	// BulkProgress is one verified-in-order chunk of a transfer: Event.Transfer.
	BulkProgress
	// BulkDone ends a transfer, well or badly: Event.Transfer (see
	// Transfer.Err). It comes from bulk-end, or from the chunk that broke
	// the transfer, or (ID 0) from a gap or a new session that lost it.
	BulkDone
	// Gap says events were lost: Event.Gap.
	Gap
	// Bye is the server's last event on a connection: Event.Bye.
	Bye
	// Other is an event this package does not know ("message", the name of
	// an event without one) or could not decode (Err set): Name and Data.
	Other
)

var kindNames = [...]string{"State", "Tick", "Tuned", "Chat", "BulkProgress", "BulkDone", "Gap", "Bye", "Other"}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// ConnState is the state of a Session's stream as Run sees it.
type ConnState int

// Connection states, in the order a stream usually goes through them.
const (
	// Connecting: a GET /events is being made (Attempt failures so far).
	Connecting ConnState = iota
	// Connected: the stream is open on a session that did not resume
	// (the first connection of a Session, or one without history).
	Connected
	// Resumed: the stream is open again and the server said it resumed from
	// our Last-Event-ID.
	Resumed
	// Reconnecting: the stream was lost (Err says why); Run waits the
	// server's retry delay (with backoff after repeated failures) and tries
	// again.
	Reconnecting
	// NewSession: the server no longer knew the session (404 or bye
	// "expired"); Run opened a new one and re-tuned the channels. Session.ID
	// has changed, the old position and transfers are gone.
	NewSession
	// Failed: Run gives up (Err says why) and returns that error.
	Failed
)

var stateNames = [...]string{"connecting", "connected", "resumed", "reconnecting", "new-session", "failed"}

func (s ConnState) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("ConnState(%d)", int(s))
}

// Event is what Run delivers: either one SSE event of the stream, decoded, or
// (Kind State) a change of the connection. Only the fields of its Kind are set.
type Event struct {
	Kind Kind
	// ID is the SSE id; 0 for State events.
	ID uint64
	// Name is the SSE event name ("message" if the event had none).
	Name string
	// Data is the event's data as the stream carried it. It is not shared.
	Data []byte

	// For Kind State. Attempt counts failed tries since the last connect.
	// Err says why (State Reconnecting, NewSession, Failed); for Kind Other
	// it is set when an event of a known name could not be decoded
	// (ErrProtocol), and Name and Data say what came.
	State   ConnState
	Attempt int
	Err     error
	// Session is the session event of a new connection (State Connected or
	// Resumed) or the new session (State NewSession).
	Session *protocol.SessionEvent
	// Node is, for State Connected and Resumed, the cluster node serving
	// the stream (the X-Xhrsse-Node header); empty from a single server.
	// It comes from the server: display it as untrusted text.
	Node string

	// For Kind Tick: the channel's name and its characters.
	Channel string
	Text    string

	Tuned    *protocol.Tuned
	Chat     *protocol.Chat
	Transfer *Transfer // BulkProgress and BulkDone
	Gap      *protocol.Gap
	Bye      *protocol.Bye
}
