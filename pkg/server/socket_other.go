//go:build !linux

package server

import "syscall"

// setNotSentLowat is Linux-only: elsewhere the kernel's send buffer is the
// queue ahead of a live event, and bulk is not paced by it.
func setNotSentLowat(syscall.RawConn, int) bool { return false }

func unsent(syscall.RawConn) int { return 0 }
