package main

import "sync"

// tasks tracks the goroutines the model starts outside Bubble Tea's own
// (the stream reader and its batcher), so that main can wait for them after
// the program has stopped. Once Close has begun it starts no more: a dial
// still under way when the user quits cannot leave a stream behind.
type tasks struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// Go starts every f in its own goroutine, or none of them (reporting false)
// if Close has been called.
func (t *tasks) Go(fs ...func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(len(fs))
	for _, f := range fs {
		go func() {
			defer t.wg.Done()
			f()
		}()
	}
	return true
}

// Close refuses new goroutines and waits for the running ones, which the
// caller must have told to stop (by cancelling their context).
func (t *tasks) Close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.wg.Wait()
}
