package server

import (
	"context"
	"crypto/tls"
	"net"
	"syscall"

	"github.com/xhrsse/xhrsse/pkg/broadcast"
)

// notSentLowat is the unsent bytes a connection's socket may hold before
// the server's writes to it wait (TCP_NOTSENT_LOWAT, Linux). Without it
// the kernel takes megabytes (the send buffer autotunes to tcp_wmem's
// maximum, 4 MB by default) and a chat written behind a bulk transfer
// waits for all of them to cross a slow link; with it, the queue ahead of
// the chat is this much plus one bulk chunk plus what the link itself holds
// (docs/PROTOCOL.md "Bulk transfers"). Large enough to keep a fast link
// busy between two writes.
const notSentLowat = 16 << 10

// connContext is the http.Server's ConnContext: it gives the requests on
// each accepted connection the connection itself, which an HTTP/1.1
// stream writes to (chunked.go), and on a TCP connection it sets the
// low-water mark and gives them a Backlog for the stream's bulk pacing.
// On a connection that is not TCP (a test's pipe) it sets nothing.
func connContext(ctx context.Context, c net.Conn) context.Context {
	ctx = withConn(ctx, c)
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return ctx
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return ctx
	}
	if !setNotSentLowat(raw, notSentLowat) {
		return ctx
	}
	return broadcast.WithBacklog(ctx, func() int { return unsent(raw) })
}
