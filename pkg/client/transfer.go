package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// Transfer is one bulk transfer being received on a session's stream. Its
// chunks are written to the caller's writer in sequence as they arrive and
// hashed on the way, so it holds at most one chunk. It is safe for concurrent
// use; Run alone feeds it.
type Transfer struct {
	acc  protocol.BulkAccepted
	w    io.Writer
	done chan struct{}

	mu       sync.Mutex
	h        hash.Hash
	next     int   // next seq expected
	received int64 // bytes written
	err      error
	sum      string
	ended    bool
}

func newTransfer(acc protocol.BulkAccepted, w io.Writer) *Transfer {
	if w == nil {
		w = io.Discard
	}
	return &Transfer{acc: acc, w: w, h: sha256.New(), done: make(chan struct{})}
}

// ID returns the server's transfer id.
func (t *Transfer) ID() string { return t.acc.Transfer }

// Accepted returns the server's answer to the POST. For a transfer this
// Session did not start (seen only on the stream), Bytes is -1 and SHA256
// empty.
func (t *Transfer) Accepted() protocol.BulkAccepted { return t.acc }

// Progress returns the bytes received and verified-in-order so far and the
// total announced (-1 if unknown).
func (t *Transfer) Progress() (received, total int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.received, t.acc.Bytes
}

// Done is closed when the transfer has ended, verified or not.
func (t *Transfer) Done() <-chan struct{} { return t.done }

// Err returns nil while the transfer runs and after it ended verified; an
// error wrapping ErrChecksum on a sha256 or size mismatch; ErrChunksLost,
// ErrSessionLost or a write error otherwise.
func (t *Transfer) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// SHA256 returns the hex sha256 of the bytes received, once Done.
func (t *Transfer) SHA256() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sum
}

// Wait waits for the transfer to end or ctx to end and returns Err (or
// ctx's error). A transfer ends only by the stream, so Run must be running.
func (t *Transfer) Wait(ctx context.Context) error {
	select {
	case <-t.done:
		return t.Err()
	case <-ctx.Done():
		return fmt.Errorf("client: transfer %s: %w", t.ID(), ctx.Err())
	}
}

// chunk feeds one bulk event. It reports whether the chunk was new
// (written); if it was not, the transfer may have just failed (isDone).
// Chunks must arrive in sequence: the server sends them in order and after
// a resume re-sends from the first missing one, so a jump means chunks were
// lost.
func (t *Transfer) chunk(c protocol.BulkChunk) (fresh bool) {
	t.mu.Lock()
	var err error
	switch {
	case t.ended || c.Seq < t.next:
		t.mu.Unlock()
		return false // ended, or a repeat (ids should have caught it already)
	case c.Seq > t.next:
		err = fmt.Errorf("%w: transfer %s: got chunk %d, expected %d", ErrChunksLost, t.ID(), c.Seq, t.next)
	case c.Chunks != t.acc.Chunks || c.Seq >= c.Chunks:
		err = fmt.Errorf("%w: transfer %s: chunk %d of %d, announced %d chunks", ErrProtocol, t.ID(), c.Seq, c.Chunks, t.acc.Chunks)
	case len(c.Data) > protocol.BulkChunkSize:
		err = fmt.Errorf("%w: transfer %s: chunk %d has %d bytes", ErrProtocol, t.ID(), c.Seq, len(c.Data))
	default:
		t.next++
		t.received += int64(len(c.Data))
		t.h.Write(c.Data)
	}
	t.mu.Unlock()
	if err != nil {
		t.finish(err)
		return false
	}
	// The writer is called outside the lock so Progress never waits on it;
	// only Run calls chunk, so writes stay in order.
	if _, err := t.w.Write(c.Data); err != nil {
		t.finish(fmt.Errorf("client: transfer %s: write: %w", t.ID(), err))
		return false
	}
	return true
}

// end feeds the bulk-end event and ends the transfer.
func (t *Transfer) end(e protocol.BulkEnd) {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return
	}
	sum := hex.EncodeToString(t.h.Sum(nil))
	next, received := t.next, t.received
	t.sum = sum
	acc := t.acc
	t.mu.Unlock()

	var err error
	switch {
	case next != acc.Chunks:
		err = fmt.Errorf("%w: transfer %s: ended after %d of %d chunks", ErrChunksLost, t.ID(), next, acc.Chunks)
	case received != e.Bytes || (acc.Bytes >= 0 && received != acc.Bytes):
		err = fmt.Errorf("%w: transfer %s: %d bytes received, bulk-end says %d, POST said %d", ErrChecksum, t.ID(), received, e.Bytes, acc.Bytes)
	case sum != e.SHA256:
		err = fmt.Errorf("%w: transfer %s: sha256 %s, bulk-end says %s", ErrChecksum, t.ID(), sum, e.SHA256)
	case acc.SHA256 != "" && sum != acc.SHA256:
		err = fmt.Errorf("%w: transfer %s: sha256 %s, POST said %s", ErrChecksum, t.ID(), sum, acc.SHA256)
	}
	t.finish(err)
}

// finish ends the transfer with err (nil: verified). Only the first call
// counts; it reports whether this call ended it.
func (t *Transfer) finish(err error) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return false
	}
	t.ended = true
	t.err = err
	if t.sum == "" {
		t.sum = hex.EncodeToString(t.h.Sum(nil))
	}
	close(t.done)
	return true
}

func (t *Transfer) isDone() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}
