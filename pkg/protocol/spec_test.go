package protocol_test

import (
	"strconv"
	"strings"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// specParse is a second, deliberately naive reading of WHATWG HTML §9.2.6
// over a whole input held in memory, written step by step from the spec text
// (data buffer, event type buffer, last event ID buffer and string). The fuzz
// targets compare the streaming Decoder with it, so bugs in buffering, read
// boundaries and state carried between Next calls show up as differences.
// Like the Decoder it works on bytes and does not replace invalid UTF-8.
func specParse(in string) decoded {
	in = strings.TrimPrefix(in, "\uFEFF")
	out := decoded{Retry: -1}
	var dataBuf, eventBuf, idBuf strings.Builder
	for {
		i := strings.IndexAny(in, "\r\n")
		if i < 0 {
			// End of stream: a line without a line end, and any event
			// not ended by a blank line, are discarded.
			return out
		}
		line := in[:i]
		if strings.HasPrefix(in[i:], "\r\n") {
			in = in[i+2:]
		} else {
			in = in[i+1:]
		}

		if line == "" { // dispatch the event
			out.LastID = idBuf.String()
			if dataBuf.Len() == 0 {
				dataBuf.Reset()
				eventBuf.Reset()
				continue
			}
			data := strings.TrimSuffix(dataBuf.String(), "\n")
			name := "message"
			if eventBuf.Len() > 0 {
				name = eventBuf.String()
			}
			out.Msgs = append(out.Msgs, protocol.Message{ID: out.LastID, Name: name, Data: data})
			dataBuf.Reset()
			eventBuf.Reset()
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, found := strings.Cut(line, ":")
		if found {
			value = strings.TrimPrefix(value, " ")
		}
		switch field {
		case "event":
			eventBuf.Reset()
			eventBuf.WriteString(value)
		case "data":
			dataBuf.WriteString(value)
			dataBuf.WriteByte('\n')
		case "id":
			if !strings.Contains(value, "\x00") {
				idBuf.Reset()
				idBuf.WriteString(value)
			}
		case "retry":
			// Only ASCII digits; a value too large for an int is ignored
			// (the spec does not say; this is the Decoder's choice).
			if value != "" && strings.Trim(value, "0123456789") == "" {
				if n, err := strconv.Atoi(value); err == nil {
					out.Retry = n
				}
			}
		}
	}
}

// longestLine is the length of the longest line of in, line end excluded,
// counting a final line that has no line end.
func longestLine(in string) int {
	n := 0
	for {
		i := strings.IndexAny(in, "\r\n")
		if i < 0 {
			return max(n, len(in))
		}
		n = max(n, i)
		if strings.HasPrefix(in[i:], "\r\n") {
			in = in[i+2:]
		} else {
			in = in[i+1:]
		}
	}
}

// normalise is what SSE can carry of data: CR LF and lone CR become LF.
func normalise(data string) string {
	return strings.ReplaceAll(strings.ReplaceAll(data, "\r\n", "\n"), "\r", "\n")
}
