package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

var errBadJSON = errors.New("bad JSON")

func (s *Server) channels(w http.ResponseWriter, r *http.Request) {
	s.cors(w, r)
	writeJSON(w, http.StatusOK, s.hub.Channels())
}

func (s *Server) files(w http.ResponseWriter, r *http.Request) {
	s.cors(w, r)
	fs, err := s.hub.Files()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, fs)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

func (s *Server) createSession(w http.ResponseWriter, r *http.Request) {
	var req protocol.CreateSession
	body, err := readBody(r)
	if err == nil {
		err = decodeJSON(body, &req, true)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sess, err := s.hub.NewSession(req.Channels)
	if err == nil {
		err = s.register(r.Context(), sess)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, sessionAnswer(sess))
}

// getSession tells whether a session is still alive: a browser cannot read
// the status of a failed EventSource, so this is how it tells "forgotten"
// (404) from "busy" (503) before opening a new session.
func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	s.cors(w, r)
	s.onSession(w, r, func(sess *broadcast.Session, _ []byte) (int, any, error) {
		return http.StatusOK, sessionAnswer(sess), nil
	})
}

// sessionAnswer describes a session as POST /sessions and GET /sessions/{id}
// answer it.
func sessionAnswer(sess *broadcast.Session) protocol.SessionCreated {
	return protocol.SessionCreated{
		Session:  sess.ID(),
		Channels: sess.Channels(),
		Events:   "/events?session=" + sess.ID(),
	}
}

// register makes a new session known to the cluster, if any, before its id
// is handed out; a session that cannot be reached from every node is not
// handed out at all.
func (s *Server) register(ctx context.Context, sess *broadcast.Session) error {
	c := s.cluster
	if c == nil {
		return nil
	}
	if err := c.Register(ctx, sess); err != nil {
		s.hub.Drop(sess)
		return err
	}
	return nil
}

// onSession runs do on the session named in the path, with the request's
// body, and answers with what do returns. An unknown session is 404. In a
// cluster, a session held by another node gets the request forwarded there,
// and so does one that left for another node while do ran (do then failed
// with ErrUnknownSession, having changed nothing).
func (s *Server) onSession(w http.ResponseWriter, r *http.Request, do func(sess *broadcast.Session, body []byte) (int, any, error)) {
	id := r.PathValue("id")
	c := s.cluster
	if c != nil && c.Forwarded(r) {
		c = nil // forwarded once: run here or nowhere
	}
	sess, here := s.hub.Session(id)
	if !here && c == nil {
		writeError(w, http.StatusNotFound, "unknown session")
		return
	}
	body, err := readBody(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if here {
		status, v, err := do(sess, body)
		if err == nil {
			writeJSON(w, status, v)
			return
		}
		if _, still := s.hub.Session(id); c == nil || still || !errors.Is(err, broadcast.ErrUnknownSession) {
			s.fail(w, r, err)
			return
		}
	}
	if !c.Forward(w, r, id, body) {
		writeError(w, http.StatusNotFound, "unknown session")
	}
}

func (s *Server) tune(w http.ResponseWriter, r *http.Request) {
	s.onSession(w, r, func(sess *broadcast.Session, body []byte) (int, any, error) {
		var req protocol.Tune
		if err := decodeJSON(body, &req, false); err != nil {
			return 0, nil, err
		}
		var (
			names []string
			err   error
		)
		switch {
		case req.Channels != nil && (req.Channel != "" || req.On != nil):
			err = fmt.Errorf("%w: give channel and on, or channels, not both", broadcast.ErrBadRequest)
		case req.Channels != nil:
			names, err = sess.SetChannels(req.Channels)
		case req.Channel != "" && req.On != nil:
			names, err = sess.Tune(req.Channel, *req.On)
		default:
			err = fmt.Errorf("%w: give channel and on, or channels", broadcast.ErrBadRequest)
		}
		return http.StatusOK, protocol.Tuned{Channels: names}, err
	})
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	s.onSession(w, r, func(sess *broadcast.Session, body []byte) (int, any, error) {
		var req protocol.ChatPost
		if err := decodeJSON(body, &req, false); err != nil {
			return 0, nil, err
		}
		msg, err := s.hub.Chat(r.Context(), sess, req.Name, req.Text)
		return http.StatusAccepted, protocol.ChatAccepted{ID: msg.ID}, err
	})
}

func (s *Server) bulk(w http.ResponseWriter, r *http.Request) {
	s.onSession(w, r, func(sess *broadcast.Session, body []byte) (int, any, error) {
		var req protocol.BulkPost
		if err := decodeJSON(body, &req, false); err != nil {
			return 0, nil, err
		}
		acc, err := sess.Bulk(req)
		return http.StatusAccepted, acc, err
	})
}

// events serves a session's stream: the one long-lived response.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	s.cors(w, r)
	var lastID *uint64
	raw := r.Header.Get("Last-Event-ID")
	if raw == "" {
		raw = r.URL.Query().Get("lastEventId")
	}
	if raw != "" {
		n, err := strconv.ParseUint(raw, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "Last-Event-ID must be a decimal event id")
			return
		}
		lastID = &n
	}
	pos := broadcast.Position{LastID: lastID}
	if raw := r.URL.Query().Get("at"); raw != "" {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "at must be the time the request was sent, in Unix milliseconds")
			return
		}
		pos.SentAt = n
	}
	var (
		sess *broadcast.Session
		st   *broadcast.Stream
		err  error
	)
	if id := r.URL.Query().Get("session"); id != "" {
		for try := 1; ; try++ {
			var ok bool
			if sess, ok = s.hub.Session(id); !ok {
				if s.cluster == nil {
					writeError(w, http.StatusNotFound, "unknown session")
					return
				}
				// The session lives on another node, or lived on one
				// that died: it comes here, with its history.
				if sess, err = s.cluster.Take(r.Context(), id, pos); err != nil {
					s.fail(w, r, err)
					return
				}
				if r.Context().Err() != nil {
					return // its client left while it moved: replace no stream
				}
			}
			st, err = s.hub.Attach(sess, pos)
			if s.cluster == nil || !errors.Is(err, broadcast.ErrUnknownSession) {
				break
			}
			// Another node took the session before the stream attached
			// here (a stream of the same client that reached it): the
			// session is not lost, so no 404.
			if try == 3 {
				err = fmt.Errorf("%w: the session keeps moving", broadcast.ErrUnavailable)
				break
			}
		}
	} else {
		sess, st, err = s.hub.Open()
		if err == nil {
			if err = s.register(r.Context(), sess); err != nil {
				// The stream never ran: Run is what hands its place back.
				st.Cancel()
			}
		}
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	// no-transform keeps proxies from compressing or rewriting the stream;
	// X-Accel-Buffering turns off nginx's response buffering.
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	err = st.Run(r.Context(), chunkedStream(w, r))
	s.log.Debug("stream ended", "session", protocol.ShortID(sess.ID()), "err", err)
}

// decodeJSON decodes exactly one JSON object into v, refusing unknown fields
// and trailing data. An empty body is accepted only when optional.
//
// The body must be UTF-8 with no lone surrogate escaped in it:
// encoding/json would quietly turn either into U+FFFD, and the server would
// relay text its sender never wrote.
func decodeJSON(raw []byte, v any, optional bool) error {
	if !utf8.Valid(raw) {
		return fmt.Errorf("%w: body is not valid UTF-8", errBadJSON)
	}
	if loneSurrogate(raw) {
		return fmt.Errorf("%w: a \\u escape is a lone surrogate, not a character", errBadJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			if optional {
				return nil
			}
			return fmt.Errorf("%w: empty body", errBadJSON)
		}
		return fmt.Errorf("%w: %v", errBadJSON, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the JSON object", errBadJSON)
	}
	return nil
}

// readBody reads a request body whole; one over the limit is 413.
func readBody(r *http.Request) ([]byte, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("body larger than %d bytes: %w", mbe.Limit, err)
		}
		return nil, fmt.Errorf("%w: %v", errBadJSON, err)
	}
	return raw, nil
}

// loneSurrogate reports whether raw has a \uD800–\uDFFF escape that is not
// half of a pair. Backslashes occur only in JSON strings, where each one
// starts an escape, so a scan from escape to escape needs no more parsing.
func loneSurrogate(raw []byte) bool {
	hex4 := func(i int) (rune, bool) {
		if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 16)
		return rune(n), err == nil
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		r, ok := hex4(i)
		if !ok {
			i++ // a two-character escape such as \\ or \"
			continue
		}
		switch {
		case r >= 0xD800 && r < 0xDC00:
			if lo, ok := hex4(i + 6); !ok || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 11
		case r >= 0xDC00 && r <= 0xDFFF:
			return true
		default:
			i += 5
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away: nothing to do
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, protocol.Error{Error: msg})
}
