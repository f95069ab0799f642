//go:build unix

package server

import "syscall"

// canTryWrite says tryWrite can write a socket without blocking.
const canTryWrite = true

// tryWrite is one write(2) on fd, which the runtime keeps non-blocking.
func tryWrite(fd uintptr, b []byte) (int, error) {
	for {
		n, err := syscall.Write(int(fd), b)
		if err != syscall.EINTR {
			return n, err
		}
	}
}
