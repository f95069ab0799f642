package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// Errors a caller may test for with errors.Is.
var (
	// ErrChecksum: a transfer's bytes do not hash to the sha256 the server
	// announced (in the POST answer or in bulk-end), or the byte count differs.
	ErrChecksum = errors.New("client: bulk checksum mismatch")
	// ErrChunksLost: a transfer's chunks were lost (a gap, or a chunk out of
	// sequence); the transfer cannot complete.
	ErrChunksLost = errors.New("client: bulk chunks lost")
	// ErrSessionLost: the session a transfer belonged to is gone (the server
	// forgot it and Run opened a new one).
	ErrSessionLost = errors.New("client: session lost")
	// ErrReplaced: another stream attached to this session (bye "replaced"),
	// or one opened from further on than ours is open (409); Run stops
	// instead of fighting over the session.
	ErrReplaced = errors.New("client: stream replaced by another client")
	// ErrRunning: Run was called while another Run of the same Session runs.
	ErrRunning = errors.New("client: session already running")
	// ErrEventTooLarge: an event exceeded the limit set by WithMaxEventSize.
	// Run fails with it, since a resume would only replay the same event.
	ErrEventTooLarge = errors.New("client: event too large")
	// ErrProtocol: the server sent something PROTOCOL.md does not allow.
	ErrProtocol = errors.New("client: protocol violation")
)

// APIError is every non-2xx answer of the server.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Message is the JSON "error" of the body, or the status text if the body
	// was not the protocol's error JSON.
	Message string
	// RetryAfter is the Retry-After header (429, 503), given in seconds or
	// as an HTTP date; 0 if none or unreadable.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("client: server answered %d %s", e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// apiError turns a non-2xx answer into an *APIError.
func apiError(resp *http.Response, body []byte) *APIError {
	e := &APIError{Status: resp.StatusCode}
	e.RetryAfter, _ = protocol.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	var pe protocol.Error
	if err := json.Unmarshal(body, &pe); err == nil && pe.Error != "" {
		e.Message = pe.Error
	} else {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// readAPIError reads (a bounded part of) resp's body into an *APIError.
func readAPIError(resp *http.Response) *APIError {
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil && !errors.Is(err, io.EOF) {
		data = nil
	}
	return apiError(resp, data)
}
