package cluster

import (
	"sync"
	"time"
)

// A reply the node sent may be lost although nats.go took it: it was in
// the connection's buffers, or in the broker, when that broker died (a
// SIGKILL) or the connection went silent. The node notices the loss only
// afterwards, and its asker waits out requestTimeout (10 s) for nothing: a
// forwarded bulk POST unanswered that long holds up its client's stream,
// since the client places the transfer's chunks only once the POST is
// answered. So the node keeps the replies it sent lately, and those sent
// shortly before it lost its broker go out again once it is back. A
// second copy is harmless: the asker's nats.go takes the first reply to a
// request and drops any later one.

// replyKeep is how long a sent reply is kept: a killed broker's
// connection closes at once, but a silent one is noticed only after two
// pings unanswered, and the replies sent into it meanwhile are lost; no
// longer than its asker waits (requestTimeout).
func replyKeep(claim time.Duration) time.Duration {
	return min(3*pingInterval(claim), requestTimeout)
}

// replyKeepBytes bounds the bytes kept (a take's reply holds a session's
// history): past it, the oldest replies are dropped first.
const replyKeepBytes = 8 << 20

// A reply made before the node parked its sessions is not sent again: it
// may tell of a change (a transfer started, say) to a session that another
// node has since recovered from its record, after a gap, without it. Its
// asker, still waiting, asks again, and the node that has the session now
// answers (answer.go: the same request id runs once per node).

// sentReply is one reply sent.
type sentReply struct {
	at      time.Time
	parks   uint64 // Node.parks when it was made
	subject string
	data    []byte
}

// replyLog keeps a node's recent replies, and those to send again.
type replyLog struct {
	keep time.Duration // replyKeep

	mu     sync.Mutex
	sent   []sentReply // guarded by mu; oldest first, none older than keep
	bytes  int         // guarded by mu; of sent
	resend []sentReply // guarded by mu; sent before the broker was lost
}

// add notes a reply sent on subject.
func (l *replyLog) add(subject string, data []byte, parks uint64) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent = append(l.sent, sentReply{at: now, parks: parks, subject: subject, data: data})
	l.bytes += len(data)
	drop := 0
	for drop < len(l.sent) && (now.Sub(l.sent[drop].at) > l.keep || l.bytes > replyKeepBytes) {
		l.bytes -= len(l.sent[drop].data)
		drop++
	}
	l.sent = append(l.sent[:0], l.sent[drop:]...)
}

// lost marks every reply kept as one to send again: the broker that took
// it may have died with it.
func (l *replyLog) lost() {
	l.mu.Lock()
	defer l.mu.Unlock()
	cut := time.Now().Add(-l.keep)
	for _, r := range l.sent {
		if r.at.After(cut) {
			l.resend = append(l.resend, r)
		}
	}
	l.sent, l.bytes = nil, 0
}

// takeResend returns the replies to send again, but those made before
// the node's last park (parks is Node.parks now), and forgets them all.
func (l *replyLog) takeResend(parks uint64) []sentReply {
	l.mu.Lock()
	defer l.mu.Unlock()
	rs := l.resend[:0:0]
	for _, r := range l.resend {
		if r.parks == parks {
			rs = append(rs, r)
		}
	}
	l.resend = nil
	return rs
}

// resendReplies sends again the replies sent shortly before the broker was
// lost. One that fails (the connection went again) is kept for the next
// time the broker is back, unless its asker has given up by then.
func (n *Node) resendReplies() {
	rs := n.replies.takeResend(n.parks.Load())
	cut := time.Now().Add(-requestTimeout) // its asker gave up
	sent := 0
	for i, r := range rs {
		if r.at.Before(cut) {
			continue
		}
		if err := n.nc.Publish(r.subject, r.data); err != nil {
			n.replies.mu.Lock()
			n.replies.resend = append(n.replies.resend, rs[i:]...)
			n.replies.mu.Unlock()
			break
		}
		sent++
	}
	if sent > 0 {
		n.log.Debug("replies sent again, the broker back", "replies", sent)
	}
}
