package client

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"time"

	sse "github.com/r3labs/sse/v2"
)

// How this package uses github.com/r3labs/sse/v2 (v2.10.0), and why. Every
// call into r3labs is in this file; TestR3labsQuirks pins each quirk below.
//
//   - One sse.Client per connection, subscribed with SubscribeRawWithContext:
//     the non-Raw calls add "?stream=NAME" to the URL, which this protocol
//     does not know.
//   - ReconnectStrategy is a backoff that always says stop, so r3labs makes
//     exactly one attempt and Run does the reconnecting. r3labs' own loop
//     (cenkalti/backoff exponential, 0.5 s growing to 60 s, giving up after
//     15 min) ignores the server's "retry:", retries a 404 instead of opening
//     a new session, and treats a clean end of the stream (EOF, e.g. after
//     bye "shutdown") as success, so it never reconnects then at all. Its
//     waits also do not watch the subscription's context (cenkalti/backoff
//     v1 waits on context.Background unless the BackOff carries one): after
//     ctx is cancelled while it is not connected, it keeps trying, each try
//     failing at once, until the 15 min are up, a goroutine left behind
//     (seen: still running 5 s after cancel, on a 404).
//   - A cancelled context and a clean end of the stream both come back as
//     nil (r3labs maps context.Canceled to io.EOF), so Run looks at its own
//     contexts to tell them apart.
//   - Last-Event-ID is set in sse.Client.Headers (applied after r3labs'
//     own), from the last event Run actually took, not from r3labs'
//     LastEventID, which its read loop advances for events read ahead but
//     not yet handed over (and for events with no id it copies the previous
//     id into the Event, so ids are checked by Run, not trusted).
//   - ClientMaxBufferSize is raised: r3labs bounds a whole event (not a line)
//     by it, 64 KiB by default, and a 48 KiB bulk chunk is about 65.6 KiB as
//     an event. An event over the limit ends the read loop with
//     bufio.ErrTooLong; a resume would replay the same event forever, so it
//     is fatal (ErrEventTooLarge, raised first by eventReader).
//   - ResponseValidator: without one, r3labs turns every non-200 answer into
//     a string error ("could not connect to stream: Not Found"); with one it
//     does not close the body of a rejected answer, so ours does. It also
//     swaps resp.Body for an eventReader (normalize.go), which fixes r3labs'
//     line-end, BOM and truncated-event handling.
//   - r3labs passes blocks that the spec does not dispatch: a comment-only
//     block (": ping") or a "retry:" block arrives as an Event with no data
//     but with the previous id copied in. The spec dispatches only events
//     whose data buffer is non-empty; r3labs cannot tell "data:" (empty
//     data, dispatched by the spec) from no data line, so an event with
//     empty data is not dispatched here. Every event of PROTOCOL.md has
//     non-empty data, so nothing is lost. Likewise a field line without a
//     colon ("data", "id", "event") is ignored by r3labs except "data"; the
//     server never sends one.
//     An id containing NUL, which the spec ignores, is kept by r3labs and
//     then refused by Run as not a number.
//   - "retry:" is read from the Event r3labs gives (it never uses it itself)
//     if it is all ASCII digits, as the spec says.
//   - Not used: SubscribeChan*, whose read loop goroutine can stay blocked
//     on its unbuffered channel after Unsubscribe and which report only the
//     first connection's error; and OnConnect/OnDisconnect, which write
//     Client.Connected from the read loop goroutine without a lock.
//
// r3labs calls the event handler synchronously, on the goroutine that called
// SubscribeRawWithContext; its read loop goroutine ends when the
// connection's context is cancelled, so nothing outlives subscribe.

// slack lets r3labs' buffer hold one event of the maximum size plus what
// arrives with it, so eventReader's limit is the one that trips.
const slack = 4 << 10

// noRetry is a cenkalti/backoff.BackOff that stops at once (backoff.Stop is
// -1), so r3labs makes a single attempt.
type noRetry struct{}

func (noRetry) Reset()                     {}
func (noRetry) NextBackOff() time.Duration { return -1 }

// rawEvent is one event the stream dispatched, as the SSE parser read it,
// before the protocol gives it a meaning.
type rawEvent struct {
	id   string // unchecked: r3labs may have copied the previous one in
	name string // "message" if the event had none
	data []byte
}

// listener is what one connection's events go to; subscribe calls it on
// its own goroutine.
type listener interface {
	// opened is called once the answer is a stream, with its headers.
	opened(h http.Header)
	// retry is called for a retry: field, with its delay.
	retry(d time.Duration)
	// event is called for every event the spec dispatches.
	event(ev rawEvent)
}

// subscribe makes one GET of url (a stream of the session), sending
// Last-Event-ID lastID unless it is "", and hands what it reads to l until
// the stream ends, fails, or ctx is cancelled. A non-200 answer is an
// *APIError; a stream that is not text/event-stream, ErrProtocol. onRead is
// called once the answer's head says it is a stream, then after each read of
// the body that returned bytes.
func (c *Client) subscribe(ctx context.Context, url, lastID string, onRead func(), l listener) error {
	sc := sse.NewClient(url, sse.ClientMaxBufferSize(c.maxEvent+slack))
	sc.Connection = c.stream
	sc.ReconnectStrategy = noRetry{}
	if lastID != "" {
		sc.Headers["Last-Event-ID"] = lastID
	}
	sc.ResponseValidator = func(_ *sse.Client, resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			ae := readAPIError(resp)
			resp.Body.Close()
			return ae
		}
		if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/event-stream" {
			resp.Body.Close()
			return fmt.Errorf("%w: stream has Content-Type %q", ErrProtocol, resp.Header.Get("Content-Type"))
		}
		resp.Body = newEventReader(resp.Body, c.maxEvent, onRead)
		l.opened(resp.Header)
		onRead()
		return nil
	}
	return sc.SubscribeRawWithContext(ctx, func(e *sse.Event) {
		if ctx.Err() != nil {
			return // the connection is ending; r3labs may still hand over a read-ahead event
		}
		if len(e.Retry) > 0 {
			if ms, err := strconv.ParseUint(string(e.Retry), 10, 31); err == nil {
				l.retry(time.Duration(ms) * time.Millisecond)
			}
		}
		if len(e.Data) == 0 {
			return // a comment, a retry block, or an event the spec does not dispatch
		}
		name := string(e.Event)
		if name == "" {
			name = "message"
		}
		l.event(rawEvent{id: string(e.ID), name: name, data: e.Data})
	})
}
