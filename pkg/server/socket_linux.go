package server

import (
	"syscall"
	"unsafe"
)

// From linux/tcp.h and linux/sockios.h; package syscall does not name them.
const (
	tcpNotSentLowat = 25     // TCP_NOTSENT_LOWAT
	siocOutQNSD     = 0x894B // SIOCOUTQNSD: bytes queued and not yet sent
)

// setNotSentLowat sets TCP_NOTSENT_LOWAT on the socket; false if it could
// not (not TCP, or an old kernel).
func setNotSentLowat(raw syscall.RawConn, n int) bool {
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotSentLowat, n)
	}); err != nil {
		return false
	}
	return serr == nil
}

// unsent returns the bytes the socket holds that have not been sent yet
// (0 on any error: the connection is closing, and pacing no longer matters).
func unsent(raw syscall.RawConn) int {
	var n int32
	var errno syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, siocOutQNSD, uintptr(unsafe.Pointer(&n)))
	}); err != nil || errno != 0 {
		return 0
	}
	return int(n)
}
