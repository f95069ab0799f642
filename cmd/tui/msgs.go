package main

import (
	"os"
	"time"

	"github.com/xhrsse/xhrsse/pkg/client"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// Messages of the client. Each is handled by the root model, which passes
// the relevant part to the pane that owns it.

// dialMsg asks for another try at reaching the server (GET /channels, GET
// /files, POST /sessions); gen drops retries of an older attempt.
type dialMsg struct{ gen int }

// dialedMsg is the result of a dial: the server's channels and files and a
// fresh session, or the error that prevented them.
type dialedMsg struct {
	gen      int
	channels []protocol.Channel
	files    []protocol.File
	sess     *client.Session
	str      *stream
	err      error
}

// batchMsg is everything the stream delivered since the last batch: at most
// one of these reaches the program per frame, whatever the event rate.
type batchMsg struct {
	gen    int                 // the stream it came from
	events int                 // how many stream events it folds together
	ticks  map[string]string   // per ticker channel, the newest characters, in order
	posts  map[string][]string // per published channel, the newest events' data, in order
	order  []string            // channels in the order they first had an event
	pub    map[string]bool     // the published channels (the stream's, read only)
	tuned  *protocol.Tuned     // the newest tuned set
	chats  []protocol.Chat     // in order
	states []client.Event      // connection changes, in order
	gaps   []protocol.Gap      // gap events, in order
	bye    *protocol.Bye       // the newest bye
	xfers  []*client.Transfer  // transfers that progressed or ended
	// closed says the stream ended (Run returned err); no batch follows.
	closed bool
	err    error
}

// tunedMsg answers a tune POST: the set the server now has, or an error.
type tunedMsg struct {
	sess     *client.Session // the session it was sent on
	channels []string
	err      error
}

// chatSubmitMsg is a line the user entered in the chat input.
type chatSubmitMsg struct{ text string }

// chatSentMsg answers a chat POST.
type chatSentMsg struct{ err error }

// bulkSubmitMsg is what the user asked for at the bulk prompt.
type bulkSubmitMsg struct{ req protocol.BulkPost }

// bulkStartedMsg answers a bulk POST: the transfer and where it is being
// saved, or why it could not start.
type bulkStartedMsg struct {
	t    *client.Transfer
	f    *os.File
	path string
	err  error
}

// bulkSavedMsg reports that a finished transfer's file was closed and its
// bytes on disk were hashed again.
type bulkSavedMsg struct {
	t      *client.Transfer
	path   string
	sha256 string // of the file on disk
	err    error
}

// secondMsg refreshes once a second what changes with time alone (events
// per second, transfer speed).
type secondMsg time.Time
