package ssetest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// Decode decodes an event's data strictly (see strict).
func Decode[T any](t testing.TB, m protocol.Message) T {
	t.Helper()
	v, err := strict[T]([]byte(m.Data))
	if err != nil {
		t.Fatalf("event %s: %v", m.Name, err)
	}
	return v
}

// DecodeReply checks that a 2xx answer is JSON and decodes it strictly.
func DecodeReply[T any](t testing.TB, what string, r Reply) T {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: Content-Type %q, want application/json", what, ct)
	}
	v, err := strict[T](r.Body)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// strict decodes exactly one JSON value with no unknown fields: what
// PROTOCOL.md promises a client.
func strict[T any](data []byte) (T, error) {
	var v T
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, fmt.Errorf("decode %T from %.200q: %w", v, data, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return v, fmt.Errorf("decode %T from %.200q: trailing data", v, data)
	}
	return v, nil
}

// ID parses an event's id, which PROTOCOL.md makes a decimal integer.
func ID(t testing.TB, m protocol.Message) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(m.ID, 10, 64)
	if err != nil {
		t.Fatalf("event %s: id %q is not a decimal integer", m.Name, m.ID)
	}
	return n
}

// Consecutive fails the test unless the events' ids run from first on
// without a hole or a repeat.
func Consecutive(t testing.TB, first uint64, ms []protocol.Message) {
	t.Helper()
	for i, m := range ms {
		if id := ID(t, m); id != first+uint64(i) {
			t.Fatalf("event %d (%s): id %d, want %d (ids must be consecutive)", i, m.Name, id, first+uint64(i))
		}
	}
}

// ParseChunk decodes a bulk event's data as strict would, but reads the
// long base64 string with the base64 decoder only: under -race the JSON
// scanner costs a function call per byte, and the tests move hundreds of
// MiB. It needs the data field last and unescaped, as the server writes it;
// anything else goes to strict.
func ParseChunk(data string) (protocol.BulkChunk, error) {
	const key = `,"data":"`
	i := strings.Index(data, key)
	if i < 0 || !strings.HasSuffix(data, `"}`) {
		return strict[protocol.BulkChunk]([]byte(data))
	}
	head, err := strict[struct {
		Transfer string `json:"transfer"`
		Seq      int    `json:"seq"`
		Chunks   int    `json:"chunks"`
	}]([]byte(data[:i] + "}"))
	if err != nil {
		return protocol.BulkChunk{}, fmt.Errorf("bulk chunk head: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(data[i+len(key) : len(data)-2])
	if err != nil {
		return protocol.BulkChunk{}, fmt.Errorf("bulk chunk %d: data is not standard padded base64: %w", head.Seq, err)
	}
	return protocol.BulkChunk{Transfer: head.Transfer, Seq: head.Seq, Chunks: head.Chunks, Data: raw}, nil
}
