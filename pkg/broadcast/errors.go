package broadcast

import "errors"

// Errors returned by the hub. The HTTP layer maps each to a status.
var (
	ErrUnknownSession  = errors.New("unknown session")
	ErrUnknownChannel  = errors.New("unknown channel")
	ErrUnknownFile     = errors.New("unknown file")
	ErrTooManySessions = errors.New("too many sessions")
	ErrTooManyStreams  = errors.New("too many streams")
	ErrClosed          = errors.New("server shutting down")
	ErrBulkTooLarge    = errors.New("bulk transfer too large")
	ErrBadRequest      = errors.New("bad request")
	// ErrSuperseded: a resume from before where the session's open stream
	// started, sent before that stream's request and arriving after it.
	ErrSuperseded = errors.New("a newer stream of this session is open")
	// ErrUnavailable: a cluster's broker cannot be reached; try again. A
	// Relay returns it (pkg/cluster), and the HTTP layer maps it to 503.
	ErrUnavailable = errors.New("cluster unavailable")
)

// Errors of a publish, beside ErrUnknownChannel, ErrBadRequest and ErrClosed.
var (
	// ErrNotPublished: the channel ticks; nobody publishes to it (409).
	ErrNotPublished = errors.New("channel is not a published channel")
	// ErrEventTooLarge: the data of one event is over protocol.MaxPublishData (413).
	ErrEventTooLarge = errors.New("event data too large")
)
