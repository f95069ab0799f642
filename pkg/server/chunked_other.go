//go:build !unix

package server

import "errors"

// canTryWrite says tryWrite can write a socket without blocking: not here.
const canTryWrite = false

func tryWrite(uintptr, []byte) (int, error) { return 0, errors.ErrUnsupported }
