package cluster

import "sync"

// A sessionLocks lets one thing at a time happen to a session's record and
// place: this node writing its record, handing it over, parking it. A write
// that checked the session was here must reach the broker before the
// session leaves, or it would overwrite the new node's record with this
// node's name. One lock per session, not one for all: while the sessions
// bucket has no leader a record write waits up to recordWait, and only the
// hand-over of that one session need wait for it.
type sessionLocks struct {
	mu   sync.Mutex
	held map[string]chan struct{} // guarded by mu; by session id, closed at unlock
}

// lock waits until no one else holds id's lock, and takes it.
func (l *sessionLocks) lock(id string) {
	for {
		l.mu.Lock()
		if l.held == nil {
			l.held = make(map[string]chan struct{})
		}
		busy, ok := l.held[id]
		if !ok {
			l.held[id] = make(chan struct{})
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		<-busy
	}
}

// unlock lets id's lock go.
func (l *sessionLocks) unlock(id string) {
	l.mu.Lock()
	done := l.held[id]
	delete(l.held, id)
	l.mu.Unlock()
	close(done)
}
