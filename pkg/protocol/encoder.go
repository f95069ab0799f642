package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadEventName is returned for an event name that would break the framing
// or that no client could dispatch on.
var ErrBadEventName = errors.New("protocol: bad event name")

// ValidEventName reports whether name can be sent as an SSE event type: non-empty,
// no CR, LF or NUL (which would end or corrupt the field), and no leading
// space (a parser strips one, so the client would see another name).
func ValidEventName(name string) bool {
	return name != "" && name[0] != ' ' && !strings.ContainsAny(name, "\r\n\x00")
}

// AppendID appends the "id:" line of an event. Ids are decimal integers, so
// they cannot carry CR, LF or NUL.
func AppendID(dst []byte, id uint64) []byte {
	dst = append(dst, "id: "...)
	dst = strconv.AppendUint(dst, id, 10)
	return append(dst, '\n')
}

// AppendBody appends the "event:" and "data:" lines and the blank line that
// ends an event. Data is split on CR LF, CR and LF, one "data:" line each, so
// a parser gives back data with its line ends turned into LF (SSE has no way
// to carry a bare CR). The body is the part of a frame that is the same for
// every listener: the hub encodes it once and prefixes each session's id.
func AppendBody(dst []byte, name string, data []byte) ([]byte, error) {
	if !ValidEventName(name) {
		return dst, fmt.Errorf("%w: %q", ErrBadEventName, name)
	}
	dst = append(dst, "event: "...)
	dst = append(dst, name...)
	dst = append(dst, '\n')
	for {
		i := indexLineEnd(data)
		dst = append(dst, "data: "...)
		if i < 0 {
			dst = append(dst, data...)
			dst = append(dst, '\n')
			break
		}
		dst = append(dst, data[:i]...)
		dst = append(dst, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	return append(dst, '\n'), nil
}

// AppendEvent appends one whole event: id, type, data and the blank line.
func AppendEvent(dst []byte, id uint64, name string, data []byte) ([]byte, error) {
	if !ValidEventName(name) {
		return dst, fmt.Errorf("%w: %q", ErrBadEventName, name)
	}
	return AppendBody(AppendID(dst, id), name, data)
}

// AppendComment appends a comment (": text"), which clients ignore; proxies
// see traffic. Line ends in text start a new comment line, so a comment can
// never turn into a field.
func AppendComment(dst []byte, text string) []byte {
	for {
		i := indexLineEndString(text)
		dst = append(dst, ':', ' ')
		if i < 0 {
			dst = append(dst, text...)
			dst = append(dst, '\n')
			break
		}
		dst = append(dst, text[:i]...)
		dst = append(dst, '\n')
		if text[i] == '\r' && i+1 < len(text) && text[i+1] == '\n' {
			i++
		}
		text = text[i+1:]
	}
	return append(dst, '\n')
}

// AppendRetry appends a "retry:" field, the client's reconnection delay.
func AppendRetry(dst []byte, millis int) []byte {
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, int64(millis), 10)
	return append(dst, '\n', '\n')
}

// indexLineEnd returns the index of the first CR or LF in b, or -1. Two
// IndexByte calls (vectorised) beat one byte loop: a bulk chunk's data line
// is 65 KiB with no line end in it.
func indexLineEnd(b []byte) int {
	lf := bytes.IndexByte(b, '\n')
	head := b
	if lf >= 0 {
		head = b[:lf]
	}
	if cr := bytes.IndexByte(head, '\r'); cr >= 0 {
		return cr
	}
	return lf
}

// indexLineEndString is indexLineEnd for a string, so that AppendComment
// need not copy its text to a []byte.
func indexLineEndString(s string) int {
	lf := strings.IndexByte(s, '\n')
	head := s
	if lf >= 0 {
		head = s[:lf]
	}
	if cr := strings.IndexByte(head, '\r'); cr >= 0 {
		return cr
	}
	return lf
}
