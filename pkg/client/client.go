// Package client speaks the xhrsse protocol (docs/PROTOCOL.md) for Go
// programs: the terminal client, the end-to-end tests and the soak.
// A Client makes the plain HTTP calls; a Session is one server session, steered
// by POSTs (Tune, Chat, Bulk) while Run reads its SSE stream, resumes it after
// network loss, opens a new session when the server forgot the old one, and
// reassembles and verifies bulk transfers.
//
// The stream is read with github.com/r3labs/sse/v2, which this package wraps
// so that no caller meets its quirks; see r3labs.go and normalize.go for what
// is worked around and why.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// Defaults of the options.
const (
	// DefaultMaxEventSize bounds one SSE event (all its lines). The largest
	// event of the protocol is a bulk chunk: 48 KiB raw is 64 KiB of base64
	// plus JSON and field names, just above r3labs' default of 64 KiB, so
	// the limit is set well above it. Memory grows only to the largest event
	// actually seen.
	DefaultMaxEventSize = 1 << 20
	// DefaultMaxBackoff caps the wait between failed reconnects.
	DefaultMaxBackoff = 30 * time.Second
	// DefaultIdleTimeout ends a stream that has sent nothing, not even a
	// ping comment, for three ping intervals: the connection is probably
	// dead without the TCP stack knowing, so Run resumes on a new one.
	DefaultIdleTimeout = 3 * protocol.PingInterval
	// DefaultConnectTimeout is how long a stream's answer may take to come:
	// as long as the idle limit, which counts only from the answer. A node
	// of a cluster taking the session over from another may take seconds.
	DefaultConnectTimeout = DefaultIdleTimeout
	// maxAnswer bounds a non-stream answer body read into memory.
	maxAnswer = 4 << 20
)

// Client makes the protocol's HTTP calls against one server. It is safe for
// concurrent use; its zero value is not usable, call New.
type Client struct {
	base        string
	hc          *http.Client // POSTs and GETs; may have a Timeout
	stream      *http.Client // the same, without Timeout, for streams
	log         *slog.Logger
	origin      string
	maxEvent    int
	maxBackoff  time.Duration
	idleTimeout time.Duration
	connTimeout time.Duration // for a stream's answer
}

// Option configures a Client in New.
type Option func(*Client)

// WithHTTPClient sets the HTTP client for every request. Streams use a copy
// with Timeout 0 (a Timeout would cut every stream after that time); the
// copy shares the Transport. The default is a client with its own clone of
// http.DefaultTransport, so CloseIdleConnections touches nothing else.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithLogger sets the logger (default: slog.Default()). Session ids are
// logged shortened: they are capabilities.
func WithLogger(l *slog.Logger) Option {
	return func(c *Client) {
		if l != nil {
			c.log = l
		}
	}
}

// WithOrigin sets the Origin header on every POST, to test the server's
// origin check the way a browser would trip it. Default: no Origin.
func WithOrigin(origin string) Option {
	return func(c *Client) { c.origin = origin }
}

// WithMaxEventSize sets the largest SSE event accepted (default
// DefaultMaxEventSize). It is passed to r3labs as sse.ClientMaxBufferSize.
func WithMaxEventSize(n int) Option {
	return func(c *Client) {
		if n > 0 {
			c.maxEvent = n
		}
	}
}

// WithMaxBackoff caps the wait between failed reconnects (default
// DefaultMaxBackoff). The first wait is always the server's retry: delay.
func WithMaxBackoff(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.maxBackoff = d
		}
	}
}

// WithIdleTimeout sets how long a stream may be silent (no event, no ping)
// before Run drops it and resumes (default DefaultIdleTimeout; 0 disables).
// It counts from the answer's head: see WithConnectTimeout for the wait
// before it.
func WithIdleTimeout(d time.Duration) Option {
	return func(c *Client) { c.idleTimeout = max(d, 0) }
}

// WithConnectTimeout sets how long Run waits for the answer to a stream's
// request before it drops the request and tries again (default
// DefaultConnectTimeout; 0 disables).
func WithConnectTimeout(d time.Duration) Option {
	return func(c *Client) { c.connTimeout = max(d, 0) }
}

// New returns a Client for the server at baseURL, like
// "http://127.0.0.1:8080" (a trailing slash or path prefix is kept as the
// prefix of every endpoint).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: bad base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q must be http(s)://host[:port]", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: base URL %q must not have a query or fragment", baseURL)
	}
	c := &Client{
		base:        strings.TrimRight(u.String(), "/"),
		log:         slog.Default(),
		maxEvent:    DefaultMaxEventSize,
		maxBackoff:  DefaultMaxBackoff,
		idleTimeout: DefaultIdleTimeout,
		connTimeout: DefaultConnectTimeout,
	}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		c.hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	sc := *c.hc
	sc.Timeout = 0
	if tr, ok := transportOf(c.hc); ok && u.Scheme == "http" {
		// Over HTTP/1.1 a stream gets a connection of its own. On a kept-
		// alive connection, http.Transport sends a GET again when the
		// connection fails before the answer, though the first copy may
		// have reached the server; arriving last, that copy would replace
		// the stream being read (bye "replaced"). Over HTTP/2 the stream
		// and the POSTs share one connection, and the HTTP/2 transport only
		// retries requests the server never saw.
		tr = tr.Clone()
		tr.DisableKeepAlives = true
		sc.Transport = tr
	}
	c.stream = &sc
	return c, nil
}

// BaseURL returns the server's base URL without a trailing slash.
func (c *Client) BaseURL() string { return c.base }

// CloseIdleConnections closes the idle keep-alive connections of the HTTP
// client, so that a program (or a test checking for goroutine leaks) ends
// clean. Open streams are not affected.
func (c *Client) CloseIdleConnections() {
	c.hc.CloseIdleConnections()
	c.stream.CloseIdleConnections()
}

// transportOf returns hc's transport when it is an *http.Transport.
func transportOf(hc *http.Client) (*http.Transport, bool) {
	switch tr := hc.Transport.(type) {
	case nil:
		return http.DefaultTransport.(*http.Transport), true
	case *http.Transport:
		return tr, true
	}
	return nil, false
}

// Channels returns the server's channels (GET /channels).
func (c *Client) Channels(ctx context.Context) ([]protocol.Channel, error) {
	var out []protocol.Channel
	if err := c.do(ctx, http.MethodGet, "/channels", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Files returns what a bulk transfer can send by name (GET /files).
func (c *Client) Files(ctx context.Context) ([]protocol.File, error) {
	var out []protocol.File
	if err := c.do(ctx, http.MethodGet, "/files", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Open opens a session tuned to channels (POST /sessions). Its stream is
// read by Session.Run.
func (c *Client) Open(ctx context.Context, channels ...string) (*Session, error) {
	created, err := c.create(ctx, channels)
	if err != nil {
		return nil, err
	}
	return newSession(c, created), nil
}

func (c *Client) create(ctx context.Context, channels []string) (protocol.SessionCreated, error) {
	var out protocol.SessionCreated
	err := c.do(ctx, http.MethodPost, "/sessions", protocol.CreateSession{Channels: channels}, &out)
	if err != nil {
		return out, err
	}
	if out.Session == "" {
		return out, fmt.Errorf("%w: POST /sessions answered no session id", ErrProtocol)
	}
	return out, nil
}

// do makes one request. in, if not nil, is sent as JSON; a 2xx answer is
// decoded into out (if not nil); any other answer becomes an *APIError.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if method == http.MethodPost && c.origin != "" {
		req.Header.Set("Origin", c.origin)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("client: %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s %s: %w", method, path, apiError(resp, data))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%w: %s %s: bad answer: %v", ErrProtocol, method, path, err)
	}
	return nil
}
