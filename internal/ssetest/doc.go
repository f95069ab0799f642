// Package ssetest is the toolkit of the end-to-end tests, as net/http/httptest
// is for handlers: it reads a real SSE response with protocol.Decoder and
// nothing else (no reconnect, no pkg/client), so a test sees exactly what one
// connection carried, over HTTP/1.1, HTTP/2 or a proxy; it sends the plain
// requests of docs/PROTOCOL.md and checks their answers; Eventually
// waits for a condition; and Buffer holds a log written from many
// goroutines.
//
// Every wait is bounded by Wait unless a call takes its own bound.
package ssetest

import "time"

// Wait bounds every wait of the toolkit. It is generous on purpose: the
// tests run under -race on busy machines, and a test only waits this long
// when it is about to fail.
const Wait = 20 * time.Second

// maxLine is the longest SSE line a Stream accepts: one bulk chunk is 64 KiB
// of base64 plus its JSON.
const maxLine = 1 << 20
