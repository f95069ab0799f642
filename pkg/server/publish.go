package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
	"golang.org/x/time/rate"
)

// publisher holds what POST /channels/{name}/events needs besides the hub:
// the tokens and the per-channel allowance.
type publisher struct {
	tokens [][sha256.Size]byte // hashes of the accepted tokens; empty: publishing is off
	rate   rate.Limit          // events a second per channel
	burst  int                 // a second's worth, within an int

	mu     sync.Mutex               // guards limits
	limits map[string]*rate.Limiter // by channel name, made at its first publish
}

func newPublisher(cfg Config) *publisher {
	r := cfg.PublishRate
	if r <= 0 {
		r = protocol.DefaultPublishRate
	}
	p := &publisher{rate: rate.Limit(r), burst: int(min(max(1, r), 1<<30)), limits: map[string]*rate.Limiter{}}
	for _, t := range cfg.PublishTokens {
		if t != "" {
			p.tokens = append(p.tokens, sha256.Sum256([]byte(t)))
		}
	}
	return p
}

// authorized compares the request's bearer token with every accepted one in
// constant time: hashing first makes the comparison independent of the
// tokens' lengths, and every token is compared, so the time says nothing of
// which one matched.
func (p *publisher) authorized(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	match := 0
	for i := range p.tokens {
		match |= subtle.ConstantTimeCompare(sum[:], p.tokens[i][:])
	}
	return match == 1
}

// limit is channel's allowance.
func (p *publisher) limit(channel string) *rate.Limiter {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.limits[channel]
	if l == nil {
		l = rate.NewLimiter(p.rate, p.burst)
		p.limits[channel] = l
	}
	return l
}

// publish answers POST /channels/{name}/events: one event from a JSON body,
// or one event per line of a text body, published as each line ends.
func (s *Server) publish(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.metrics.observePost("/channels/{name}/events", time.Since(start)) }()
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(start.Add(s.cfg.RequestTimeout)) // a text body lifts it below
	_ = rc.SetWriteDeadline(start.Add(s.cfg.RequestTimeout))
	p := s.pub
	if len(p.tokens) == 0 {
		s.publishAnswer(w, http.StatusForbidden, protocol.PublishError{Error: "publishing is off: the server has no publish token"})
		return
	}
	if !p.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="xhrsse publish"`)
		s.publishAnswer(w, http.StatusUnauthorized, protocol.PublishError{Error: "missing or wrong bearer token"})
		return
	}
	name := r.PathValue("name")
	if err := s.hub.PublishTarget(name); err != nil {
		s.publishFail(w, err, 0)
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case err == nil && mt == "application/json":
		s.publishJSON(w, r, name)
	case err == nil && mt == "text/plain":
		s.publishText(w, r, rc, name)
	default:
		s.publishAnswer(w, http.StatusUnsupportedMediaType, protocol.PublishError{Error: "body must be application/json or text/plain"})
	}
}

func (s *Server) publishJSON(w http.ResponseWriter, r *http.Request, name string) {
	r.Body = http.MaxBytesReader(w, r.Body, protocol.MaxPublishBody)
	var req protocol.PublishPost
	body, err := readBody(r)
	if err == nil {
		err = decodeJSON(body, &req, false)
	}
	if err == nil {
		err = broadcast.CheckPublish([]byte(req.Data)) // before the rate: a refusal spends nothing
	}
	if err != nil {
		s.publishFail(w, err, 0)
		return
	}
	if err := broadcast.Allow(s.pub.limit(name), "publish"); err != nil {
		s.publishFail(w, err, 0)
		return
	}
	if err := s.hub.Publish(r.Context(), name, []byte(req.Data)); err != nil {
		s.publishFail(w, err, 0)
		return
	}
	s.publishAnswer(w, http.StatusAccepted, protocol.PublishAnswer{Events: 1})
}

// publishText publishes each line of the body as it ends. The body may last
// as long as its sender keeps it open: the request's read deadline is lifted
// (a publisher that vanished is found by TCP keep-alive), and the hub's
// closing ends the read.
func (s *Server) publishText(w http.ResponseWriter, r *http.Request, rc *http.ResponseController, name string) {
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() { // ends with the handler
		select {
		case <-s.hub.Done():
			// The server is shutting down: unblock the read.
			_ = rc.SetReadDeadline(time.Now())
			cancel()
		case <-done:
		}
	}()

	lines := newLineReader(r.Body, protocol.MaxPublishData)
	n := 0
	for {
		line, err := lines.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil && len(line) == 0 {
			continue // an empty line is no event: a client would not see it
		}
		if err == nil {
			err = broadcast.CheckPublish(line)
		}
		if err == nil {
			// A text body is read no faster than the channel's rate.
			err = s.pub.limit(name).Wait(ctx)
		}
		if err == nil {
			err = s.hub.Publish(ctx, name, line)
		}
		if err != nil {
			if isClosed(s.hub.Done()) {
				err = broadcast.ErrClosed
			}
			_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.RequestTimeout))
			s.publishFail(w, err, n)
			return
		}
		n++
	}
	_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.RequestTimeout))
	s.publishAnswer(w, http.StatusOK, protocol.PublishAnswer{Events: n})
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// errLineTooLong: a line of a text body is over the limit.
var errLineTooLong = fmt.Errorf("%w: a line is longer than %d bytes", broadcast.ErrEventTooLarge, protocol.MaxPublishData)

// lineReader splits a text body into lines as they arrive: a line ends at LF
// (a CR at its end is dropped), and the last line may end at the end of the
// body instead. A line is returned as soon as its end has been read.
type lineReader struct {
	br  *bufio.Reader
	max int // the longest line, in bytes
}

func newLineReader(r io.Reader, max int) *lineReader {
	// Room for the longest line and its CR LF: a longer one fills the
	// buffer without an end. (bufio makes a buffer of at least 16 bytes.)
	return &lineReader{br: bufio.NewReaderSize(r, max+2), max: max}
}

// next returns the next line without its end, valid until the next call;
// io.EOF after the last; errLineTooLong for a line over the limit (the
// reader is then of no more use).
func (l *lineReader) next() ([]byte, error) {
	line, err := l.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, errLineTooLong
	case errors.Is(err, io.EOF) && len(line) > 0:
		err = nil // the last line, with no end
	case err != nil:
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) > l.max {
		return nil, errLineTooLong
	}
	return line, nil
}

// publishFail answers a publish that failed after events published events.
func (s *Server) publishFail(w http.ResponseWriter, err error, events int) {
	status, retry := errorStatus(err)
	switch {
	case errors.Is(err, broadcast.ErrNotPublished):
		status = http.StatusConflict
	case errors.Is(err, broadcast.ErrEventTooLarge):
		status = http.StatusRequestEntityTooLarge
	case status == http.StatusInternalServerError && !errors.Is(err, context.Canceled):
		// A body that broke off (the publisher went away) is the
		// publisher's doing, not ours.
		status = http.StatusBadRequest
	}
	if retry > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int((retry+time.Second-1)/time.Second)))
	}
	s.publishAnswer(w, status, protocol.PublishError{Error: err.Error(), Events: events})
}

// publishAnswer writes a publish's answer and counts it by status.
func (s *Server) publishAnswer(w http.ResponseWriter, status int, v any) {
	s.metrics.publishRequest(status)
	writeJSON(w, status, v)
}
