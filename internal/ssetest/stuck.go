package ssetest

import (
	"fmt"
	"net"
	"testing"
)

// StuckReader asks the server at addr (host:port) for the stream at path
// over a raw connection and never reads it: a reader that stopped reading.
// Its receive buffer is small (4 KiB), so the server's writes soon block.
// The connection closes when the test ends, before a server started earlier
// stops, so that the blocked write fails at once.
func StuckReader(t testing.TB, addr, path string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, Wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr); err != nil {
		t.Fatal(err)
	}
	return conn
}
