package protocol_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the encoder's output")

// TestAppendEventGolden pins the exact bytes of one event for every shape of
// data the encoder has to split: each expected frame is written out by hand
// from the SSE grammar, not taken from the encoder.
func TestAppendEventGolden(t *testing.T) {
	tests := []struct {
		name  string
		id    uint64
		event string
		data  string
		want  string
	}{
		{"single line", 1, "one", "abc", "id: 1\nevent: one\ndata: abc\n\n"},
		{"multi-line LF", 2, "one", "a\nb\nc", "id: 2\nevent: one\ndata: a\ndata: b\ndata: c\n\n"},
		{"CRLF", 3, "one", "a\r\nb", "id: 3\nevent: one\ndata: a\ndata: b\n\n"},
		{"lone CR", 4, "one", "a\rb", "id: 4\nevent: one\ndata: a\ndata: b\n\n"},
		{"mixed line ends", 5, "one", "a\r\nb\rc\nd", "id: 5\nevent: one\ndata: a\ndata: b\ndata: c\ndata: d\n\n"},
		{"LF then CR is two line ends", 6, "one", "a\n\rb", "id: 6\nevent: one\ndata: a\ndata: \ndata: b\n\n"},
		{"blank line inside data", 7, "one", "a\r\n\r\nb", "id: 7\nevent: one\ndata: a\ndata: \ndata: b\n\n"},
		{"trailing LF", 8, "one", "a\n", "id: 8\nevent: one\ndata: a\ndata: \n\n"},
		{"trailing CRLF", 9, "one", "a\r\n", "id: 9\nevent: one\ndata: a\ndata: \n\n"},
		{"trailing CR", 10, "one", "a\r", "id: 10\nevent: one\ndata: a\ndata: \n\n"},
		{"only a line end", 11, "one", "\n", "id: 11\nevent: one\ndata: \ndata: \n\n"},
		{"empty data", 12, "one", "", "id: 12\nevent: one\ndata: \n\n"},
		{"leading space kept", 13, "one", " x", "id: 13\nevent: one\ndata:  x\n\n"},
		{"leading colon", 14, "one", ":x", "id: 14\nevent: one\ndata: :x\n\n"},
		{"CJK", 15, "two", "漢字かな", "id: 15\nevent: two\ndata: 漢字かな\n\n"},
		{"JSON", 16, protocol.EventChat, `{"id":1,"name":"ann","text":"hi: there"}`,
			"id: 16\nevent: chat\ndata: {\"id\":1,\"name\":\"ann\",\"text\":\"hi: there\"}\n\n"},
		{"NUL in data", 17, "one", "a\x00b", "id: 17\nevent: one\ndata: a\x00b\n\n"},
		{"id zero", 0, protocol.EventSession, "{}", "id: 0\nevent: session\ndata: {}\n\n"},
		{"max id", 18446744073709551615, "bye", "{}", "id: 18446744073709551615\nevent: bye\ndata: {}\n\n"},
		{"name with colon and inner space", 19, "a:b c", "x", "id: 19\nevent: a:b c\ndata: x\n\n"},
		{"name with trailing space", 20, "a ", "x", "id: 20\nevent: a \ndata: x\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := protocol.AppendEvent(nil, tt.id, tt.event, []byte(tt.data))
			if err != nil {
				t.Fatalf("AppendEvent: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("AppendEvent(%d, %q, %q)\n got %q\nwant %q", tt.id, tt.event, tt.data, got, tt.want)
			}

			// The body is the frame without its id line, and appending
			// keeps what dst already held.
			prefix := []byte("retry: 1\n\n")
			body, err := protocol.AppendBody(bytes.Clone(prefix), tt.event, []byte(tt.data))
			if err != nil {
				t.Fatalf("AppendBody: %v", err)
			}
			idLine := string(protocol.AppendID(nil, tt.id))
			if want := string(prefix) + tt.want[len(idLine):]; string(body) != want {
				t.Errorf("AppendBody(%q, %q)\n got %q\nwant %q", tt.event, tt.data, body, want)
			}
		})
	}
}

func TestAppendID(t *testing.T) {
	for _, tt := range []struct {
		id   uint64
		want string
	}{
		{0, "id: 0\n"},
		{1, "id: 1\n"},
		{1234567890, "id: 1234567890\n"},
		{18446744073709551615, "id: 18446744073709551615\n"},
	} {
		if got := protocol.AppendID([]byte("x"), tt.id); string(got) != "x"+tt.want {
			t.Errorf("AppendID(%d) = %q, want %q", tt.id, got, "x"+tt.want)
		}
	}
}

// TestAppendCommentGolden checks that a comment can never turn into a field:
// every line end in its text starts a new comment line.
func TestAppendCommentGolden(t *testing.T) {
	for _, tt := range []struct {
		name, text, want string
	}{
		{"ping", "ping", ": ping\n\n"},
		{"empty", "", ": \n\n"},
		{"embedded LF", "a\ndata: evil", ": a\n: data: evil\n\n"},
		{"embedded CRLF", "a\r\nb", ": a\n: b\n\n"},
		{"embedded CR", "a\rid: 9", ": a\n: id: 9\n\n"},
		{"mixed and trailing", "a\r\n\rb\n", ": a\n: \n: b\n: \n\n"},
		{"unicode", "über 漢字", ": über 漢字\n\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := protocol.AppendComment([]byte("id: 1\n"), tt.text)
			if want := "id: 1\n" + tt.want; string(got) != want {
				t.Errorf("AppendComment(%q)\n got %q\nwant %q", tt.text, got, want)
			}
		})
	}
}

func TestAppendRetryGolden(t *testing.T) {
	for _, tt := range []struct {
		millis int
		want   string
	}{
		{protocol.RetryMillis, "retry: 2000\n\n"},
		{0, "retry: 0\n\n"},
		{15000, "retry: 15000\n\n"},
	} {
		if got := protocol.AppendRetry([]byte(": hi\n\n"), tt.millis); string(got) != ": hi\n\n"+tt.want {
			t.Errorf("AppendRetry(%d) = %q, want %q", tt.millis, got, ": hi\n\n"+tt.want)
		}
	}
}

// badNames are event names the encoder must refuse: each would end the
// event field early, corrupt it, or reach the client as a different name.
var badNames = []struct{ why, name string }{
	{"empty", ""},
	{"LF", "a\nb"},
	{"CR", "a\rb"},
	{"CRLF", "a\r\nb"},
	{"trailing LF", "one\n"},
	{"only LF", "\n"},
	{"NUL", "a\x00b"},
	{"only NUL", "\x00"},
	{"leading space", " one"},
	{"only space", " "},
	{"injected field", "one\ndata: evil"},
}

// TestBadEventNames checks that a refused name leaves dst exactly as it was:
// same length, same bytes, and nothing written into its spare capacity.
func TestBadEventNames(t *testing.T) {
	for _, tt := range badNames {
		t.Run(tt.why, func(t *testing.T) {
			if protocol.ValidEventName(tt.name) {
				t.Errorf("ValidEventName(%q) = true", tt.name)
			}
			calls := map[string]func([]byte) ([]byte, error){
				"AppendEvent": func(dst []byte) ([]byte, error) {
					return protocol.AppendEvent(dst, 7, tt.name, []byte("x\ny"))
				},
				"AppendBody": func(dst []byte) ([]byte, error) {
					return protocol.AppendBody(dst, tt.name, []byte("x\ny"))
				},
			}
			for fn, call := range calls {
				backing := bytes.Repeat([]byte{'#'}, 64)
				copy(backing, "id: 1\n")
				dst := backing[:6]
				got, err := call(dst)
				if !errors.Is(err, protocol.ErrBadEventName) {
					t.Errorf("%s(%q): err = %v, want ErrBadEventName", fn, tt.name, err)
				}
				if string(got) != "id: 1\n" {
					t.Errorf("%s(%q) returned %q, want dst unchanged", fn, tt.name, got)
				}
				if want := "id: 1\n" + string(bytes.Repeat([]byte{'#'}, 58)); string(backing) != want {
					t.Errorf("%s(%q) wrote into dst's spare capacity: %q", fn, tt.name, backing)
				}
			}
		})
	}
}

func TestValidEventNames(t *testing.T) {
	for _, name := range []string{
		"one", "two", "three", "message", "a", "bulk-end", "a b", "a:b", "a ", "über", "漢字", "\t", "\xff",
		protocol.EventSession, protocol.EventTuned, protocol.EventChat, protocol.EventBulk,
		protocol.EventBulkEnd, protocol.EventGap, protocol.EventBye,
		protocol.ChannelOne, protocol.ChannelTwo, protocol.ChannelThree,
	} {
		if !protocol.ValidEventName(name) {
			t.Errorf("ValidEventName(%q) = false", name)
		}
		if _, err := protocol.AppendEvent(nil, 1, name, nil); err != nil {
			t.Errorf("AppendEvent(%q): %v", name, err)
		}
	}
}

// TestStreamGolden writes the start of a typical stream with every encoder
// function and compares it with testdata/stream.golden, a readable example
// of the wire format (go test -run TestStreamGolden -update rewrites it; read
// the diff before committing it). The same file is decoded in
// TestDecodeStreamGolden.
func TestStreamGolden(t *testing.T) {
	got := goldenStream(t)
	path := filepath.Join("testdata", "stream.golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("stream differs from %s\n got %q\nwant %q", path, got, want)
	}
}

func goldenStream(t *testing.T) []byte {
	t.Helper()
	var b []byte
	must := func(out []byte, e error) []byte {
		t.Helper()
		if e != nil {
			t.Fatal(e)
		}
		return out
	}
	b = protocol.AppendRetry(b, protocol.RetryMillis)
	b = must(protocol.AppendEvent(b, 0, protocol.EventSession, []byte(`{"session":"S","channels":[],"resumed":false}`)))
	b = must(protocol.AppendEvent(b, 1, protocol.EventTuned, []byte(`{"channels":["one","two"]}`)))
	b = must(protocol.AppendEvent(b, 2, protocol.ChannelOne, []byte("a")))
	b = must(protocol.AppendEvent(b, 3, protocol.ChannelTwo, []byte("漢")))
	b = protocol.AppendComment(b, "ping")
	b = must(protocol.AppendEvent(b, 4, protocol.EventChat, []byte(`{"id":1,"name":"ann","text":"hi","at":"2025-01-02T03:04:05Z"}`)))
	b = must(protocol.AppendEvent(b, 5, protocol.EventBulk, []byte(`{"transfer":"T","seq":0,"chunks":1,"data":"+/8="}`)))
	b = must(protocol.AppendEvent(b, 6, protocol.EventBulkEnd, []byte(`{"transfer":"T","bytes":2,"sha256":"H"}`)))
	b = must(protocol.AppendEvent(b, 9, protocol.EventGap, []byte(`{"missed":2}`)))
	b = must(protocol.AppendEvent(b, 9, protocol.EventBye, []byte(`{"reason":"shutdown"}`)))
	return b
}
