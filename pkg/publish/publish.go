// Package publish feeds the published channels of an xhrsse server from Go:
// one event at a time (Publish), or every line of a reader as it comes
// (Lines), over POST /channels/NAME/events of docs/PROTOCOL.md.
package publish

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A Publisher publishes to one server with one token. The zero value is not
// usable; fill in URL and Token. It is safe for concurrent use.
type Publisher struct {
	// URL is the server's, e.g. "http://127.0.0.1:8080".
	URL string
	// Token is a publish token of the server (XHRSSE_PUBLISH_TOKEN or
	// -publish-token-file).
	Token string
	// Client makes the requests; nil means http.DefaultClient. Its Timeout
	// also bounds Lines, whose request lasts as long as its reader.
	Client *http.Client
}

// An Error is a publish the server refused.
type Error struct {
	Status  int    // the HTTP status
	Message string // the server's words
	// Events is how many events of the request were published before the
	// refusal (the lines of Lines before the bad one).
	Events int
	// RetryAfter is when to try again, from the Retry-After header of a
	// 429 or 503 (zero without one).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("publish: %d %s: %s (%d events published)", e.Status, http.StatusText(e.Status), e.Message, e.Events)
}

// Publish sends one event whose data is data (line ends allowed) to channel.
// It returns once the server has put it in the history of every session
// tuned to channel, from which each session's stream sends it, now or on a
// resume (in a cluster, once the broker has it).
func (p *Publisher) Publish(ctx context.Context, channel, data string) error {
	body, err := json.Marshal(protocol.PublishPost{Data: data})
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	_, err = p.do(ctx, channel, "application/json", bytes.NewReader(body))
	return err
}

// Lines sends every line of r to channel as one event each, as each line
// ends (a streaming source such as a pipe or a log being written works),
// until r ends. It returns how many events were published; on a refusal
// (*Error) the lines before the bad one stay published.
func (p *Publisher) Lines(ctx context.Context, channel string, r io.Reader) (int, error) {
	return p.do(ctx, channel, "text/plain; charset=utf-8", r)
}

func (p *Publisher) do(ctx context.Context, channel, contentType string, body io.Reader) (int, error) {
	u := strings.TrimSuffix(p.URL, "/") + "/channels/" + url.PathEscape(channel) + "/events"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, body)
	if err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+p.Token)
	req.Header.Set("Content-Type", contentType)
	hc := p.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("publish: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, fmt.Errorf("publish: reading the answer: %w", err)
	}
	if resp.StatusCode/100 == 2 {
		var ans protocol.PublishAnswer
		if err := json.Unmarshal(raw, &ans); err != nil {
			return 0, fmt.Errorf("publish: answer %.100q: %w", raw, err)
		}
		return ans.Events, nil
	}
	e := &Error{Status: resp.StatusCode}
	var body2 protocol.PublishError
	if err := json.Unmarshal(raw, &body2); err == nil && body2.Error != "" {
		e.Message, e.Events = body2.Error, body2.Events
	} else {
		e.Message = strings.TrimSpace(string(raw))
	}
	e.RetryAfter, _ = protocol.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return e.Events, e
}
