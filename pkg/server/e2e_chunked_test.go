package server_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
	"github.com/xhrsse/xhrsse/pkg/server"
)

// TestHTTP11StreamWire: an HTTP/1.1 stream, read off the wire by hand, is a
// chunked body whose every chunk is well framed, small writes and a bulk
// transfer's large ones alike; it ends with the last chunk after bye, and
// the connection then serves the next request.
// Over TLS (HTTP/1.1 by ALPN) the stream writes to the TLS connection.
func TestHTTP11StreamWire(t *testing.T) {
	t.Run("TCP", func(t *testing.T) {
		h := start(t)
		conn, err := net.DialTimeout("tcp", h.srv.Addr, ssetest.Wait)
		if err != nil {
			t.Fatal(err)
		}
		checkStreamWire(t, h, conn)
	})
	t.Run("TLS", func(t *testing.T) {
		all := []broadcast.Option{broadcast.WithChannels(fastChannels(100)...)}
		srv := testserver.StartTLS(t, server.Config{}, all...)
		hc := srv.Client()
		t.Cleanup(hc.CloseIdleConnections)
		h := &harness{srv: srv, hc: hc}
		roots := x509.NewCertPool()
		roots.AddCert(srv.Cert)
		d := &net.Dialer{Timeout: ssetest.Wait}
		conn, err := tls.DialWithDialer(d, "tcp", srv.Addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		if p := conn.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
			t.Fatalf("ALPN %q, want http/1.1", p)
		}
		checkStreamWire(t, h, conn)
	})
}

func checkStreamWire(t *testing.T, h *harness, conn net.Conn) {
	sid := h.newSession(t, "one")
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(4 * ssetest.Wait))
	fmt.Fprintf(conn, "GET /events?session=%s HTTP/1.1\r\nHost: %s\r\n\r\n", sid, h.srv.Addr)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("head: %d, transfer encoding %q; want 200 chunked", resp.StatusCode, resp.TransferEncoding)
	}

	const size = 200_000
	acc := h.bulk(t, sid, `{"bytes":`+strconv.Itoa(size)+`}`)
	var body bytes.Buffer
	largest, replaced := 0, false
	for {
		n := readChunk(t, br, &body)
		largest = max(largest, n)
		if n == 0 {
			break
		}
		if !replaced && strings.Contains(body.String(), "event: "+protocol.EventBulkEnd) {
			// A second stream on the session ends this one with bye.
			h.events(t, sid).Expect(t, protocol.EventSession)
			replaced = true
		}
	}
	if largest <= 4<<10 {
		t.Errorf("largest chunk %d bytes: a bulk run should be written in larger ones", largest)
	}

	dec := protocol.NewDecoder(&body, 1<<20)
	var got []byte
	var names []string
	for {
		m, err := dec.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the body is not a stream of events: %v", err)
		}
		names = append(names, m.Name)
		if m.Name == protocol.EventBulk {
			c, err := ssetest.ParseChunk(m.Data)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, c.Data...)
		}
	}
	if sum := sha256.Sum256(got); len(got) != size || hex.EncodeToString(sum[:]) != acc.SHA256 {
		t.Errorf("transfer: %d bytes with sha256 %x, want %d bytes with %s", len(got), sum, size, acc.SHA256)
	}
	if len(names) < 2 || names[0] != protocol.EventSession || names[len(names)-1] != protocol.EventBye {
		t.Fatalf("events %q: want session first and bye last", names)
	}

	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", h.srv.Addr)
	next, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the connection does not serve a request after the stream: %v", err)
	}
	b, _ := io.ReadAll(next.Body)
	if next.StatusCode != http.StatusOK || string(b) != "ok\n" {
		t.Fatalf("GET /healthz after the stream: %d %q", next.StatusCode, b)
	}
}

// readChunk reads one chunk of a chunked body into body and returns its
// size; 0 is the last chunk (with no trailer).
func readChunk(t *testing.T, br *bufio.Reader, body *bytes.Buffer) int {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("chunk size line: %v", err)
	}
	if !strings.HasSuffix(line, "\r\n") {
		t.Fatalf("chunk size line %q does not end in CRLF", line)
	}
	n, err := strconv.ParseUint(strings.TrimSuffix(line, "\r\n"), 16, 32)
	if err != nil {
		t.Fatalf("chunk size line %q: %v", line, err)
	}
	if _, err := io.CopyN(body, br, int64(n)); err != nil {
		t.Fatalf("chunk of %d bytes: %v", n, err)
	}
	var end [2]byte
	if _, err := io.ReadFull(br, end[:]); err != nil || string(end[:]) != "\r\n" {
		t.Fatalf("after a chunk of %d bytes: %q %v, want CRLF", n, end, err)
	}
	return int(n)
}
