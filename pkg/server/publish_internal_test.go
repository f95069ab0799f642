package server

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// chunked hands out its data in pieces of the sizes given, in turn, as a
// network connection might.
type chunked struct {
	data  []byte
	sizes []byte
	i     int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.sizes) > 0 {
		n = int(c.sizes[c.i%len(c.sizes)]) + 1
		c.i++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// splitAll runs a lineReader to the end and returns its lines and error.
func splitAll(r io.Reader, max int) ([]string, error) {
	lr := newLineReader(r, max)
	var lines []string
	for {
		line, err := lr.next()
		if errors.Is(err, io.EOF) {
			return lines, nil
		}
		if err != nil {
			return lines, err
		}
		lines = append(lines, string(line))
	}
}

// want is the splitter's specification, written the slow way: lines end at
// LF, a CR at the end of a line is dropped, a last line without LF counts
// unless the body ends with LF, and a line over protocol.MaxPublishData ends
// the body in error.
func want(data []byte, max int) ([]string, bool) {
	var lines []string
	rest := string(data)
	for rest != "" {
		line, after, _ := strings.Cut(rest, "\n")
		line = strings.TrimSuffix(line, "\r")
		if len(line) > max {
			return lines, false
		}
		lines = append(lines, line)
		rest = after
	}
	return lines, true
}

func TestLineReader(t *testing.T) {
	for _, tc := range []struct {
		in    string
		lines []string
		ok    bool
	}{
		{"", nil, true},
		{"a", []string{"a"}, true},
		{"a\n", []string{"a"}, true},
		{"a\r\nb\n\nc", []string{"a", "b", "", "c"}, true},
		{"cr\ralone\n", []string{"cr\ralone"}, true},
		{"\r\n", []string{""}, true},
		{"x\r", []string{"x"}, true},
		{"\r", []string{""}, true},
		{strings.Repeat("a", protocol.MaxPublishData) + "\r\nnext", []string{strings.Repeat("a", protocol.MaxPublishData), "next"}, true},
		{"ok\n" + strings.Repeat("a", protocol.MaxPublishData+1) + "\n", []string{"ok"}, false},
		{strings.Repeat("a", protocol.MaxPublishData+1), nil, false},
		{strings.Repeat("a", 5*protocol.MaxPublishData), nil, false},
	} {
		got, err := splitAll(iotest.OneByteReader(strings.NewReader(tc.in)), protocol.MaxPublishData)
		if (err == nil) != tc.ok || strings.Join(got, "|") != strings.Join(tc.lines, "|") || len(got) != len(tc.lines) {
			t.Errorf("%.40q: lines %.80q, err %v; want %.80q, ok %v", tc.in, got, err, tc.lines, tc.ok)
		}
		if err != nil && !errors.Is(err, errLineTooLong) {
			t.Errorf("%.40q: error %v, want errLineTooLong", tc.in, err)
		}
	}
}

// FuzzLineReader: however the body is cut into reads, the splitter returns
// the lines of the specification, and a line over the limit is an error,
// never a line. The limit is small (the buffer's least, bufio's 16 bytes,
// and a little more), so that short inputs reach it.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("a\r\nb\n\nc"), []byte{0, 3, 1}, uint8(0))
	f.Add([]byte("\r\r\n\n\r"), []byte{}, uint8(1))
	f.Add(bytes.Repeat([]byte("x"), 17), []byte{200}, uint8(2))
	f.Add(append(bytes.Repeat([]byte("y"), 16), "\r\n\n"...), []byte{255, 7}, uint8(0))
	f.Add(append(bytes.Repeat([]byte("z"), 14), "\r\r\nok"...), []byte{2}, uint8(0))
	f.Fuzz(func(t *testing.T, data, sizes []byte, extra uint8) {
		max := 14 + int(extra%8) // buffers of 16 bytes and more
		got, err := splitAll(&chunked{data: data, sizes: sizes}, max)
		lines, ok := want(data, max)
		if ok != (err == nil) {
			t.Fatalf("err %v, want ok %v", err, ok)
		}
		if err != nil && !errors.Is(err, errLineTooLong) {
			t.Fatalf("error %v, want errLineTooLong", err)
		}
		if len(got) != len(lines) {
			t.Fatalf("%d lines, want %d", len(got), len(lines))
		}
		for i := range got {
			if got[i] != lines[i] {
				t.Fatalf("line %d: %.80q, want %.80q", i, got[i], lines[i])
			}
		}
	})
}
