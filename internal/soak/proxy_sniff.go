package soak

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// sniff marks the link a stream when a request for one starts in b. Go's
// HTTP clients write a request in one go, and a connection carries one
// request at a time, so a request line starts a read.
func (l *link) sniff(b []byte) {
	if line, _, ok := bytes.Cut(b, []byte("\r\n")); ok && bytes.Contains(line, []byte(" HTTP/1.1")) {
		last := ""
		if _, rest, ok := bytes.Cut(b, []byte("\r\nLast-Event-Id: ")); ok {
			v, _, _ := bytes.Cut(rest, []byte("\r\n"))
			last = string(v)
		}
		l.p.note(fmt.Sprintf("%s link %d: %s (Last-Event-ID %q)", time.Now().Format("15:04:05.000"), l.id, line, last))
	}
	switch {
	case bytes.HasPrefix(b, []byte("GET /events")):
		l.stream.Store(true)
		l.p.streams[l.target].Add(1)
		l.p.noteStream(b, l.target)
	case bytes.HasPrefix(b, []byte("GET ")), bytes.HasPrefix(b, []byte("POST ")), bytes.HasPrefix(b, []byte("OPTIONS ")):
		l.stream.Store(false)
		l.p.requests[l.target].Add(1)
	}
}

// noteStream notes the target of a stream request b of a session, counting
// a move when the session's stream before was on another target.
func (p *Proxy) noteStream(b []byte, target int) {
	line, _, _ := bytes.Cut(b, []byte(" HTTP/"))
	_, id, ok := bytes.Cut(line, []byte("session="))
	if !ok {
		return
	}
	id, _, _ = bytes.Cut(id, []byte("&"))
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.last[string(id)]; ok && prev != target {
		p.moves.Add(1)
	}
	p.last[string(id)] = target
}

var sessionEvent = []byte("\nevent: session\ndata: ")

// sniffSession notes the position and session of a session event in b (the
// server writes one at the start of each stream, in one piece).
func (l *link) sniffSession(b []byte) {
	i := bytes.Index(b, sessionEvent)
	if i < 0 {
		return
	}
	j := bytes.LastIndex(b[:i], []byte("id: "))
	data, _, _ := bytes.Cut(b[i+len(sessionEvent):], []byte("\n"))
	if j >= 0 {
		l.p.note(fmt.Sprintf("%s link %d: session event at %s %s", time.Now().Format("15:04:05.000"), l.id, b[j+4:i], data))
	}
}

func (p *Proxy) note(s string) {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	p.log = append(p.log, s)
	if len(p.log) > 2000 {
		p.log = append([]string(nil), p.log[1000:]...)
	}
}

// Requests returns the last requests relayed that contain s, one a line:
// when, on which connection, the request line and its Last-Event-ID.
func (p *Proxy) Requests(s string) []string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	var out []string
	for _, r := range p.log {
		if strings.Contains(r, s) {
			out = append(out, r)
		}
	}
	return out
}

var retryField = []byte("\nretry: ")

// rewriteRetry replaces the digits of every "retry:" field in b with ms,
// zero-padded to the same width, when it fits.
func rewriteRetry(b []byte, ms int) {
	for i := 0; ; {
		j := bytes.Index(b[i:], retryField)
		if j < 0 {
			return
		}
		start := i + j + len(retryField)
		end := start
		for end < len(b) && b[end] >= '0' && b[end] <= '9' {
			end++
		}
		if end < len(b) && b[end] == '\n' && end > start {
			if s := fmt.Sprintf("%0*d", end-start, ms); len(s) == end-start {
				copy(b[start:end], s)
			}
		}
		i = end
	}
}
