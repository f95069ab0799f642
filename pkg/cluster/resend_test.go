package cluster

import (
	"testing"
	"time"
)

// A reply made before the node parked its sessions is not sent again once
// the broker is back; one made since is.
func TestReplyMadeBeforeAParkIsNotSentAgain(t *testing.T) {
	l := replyLog{keep: time.Minute}
	l.add("_INBOX.before", []byte("transfer started"), 0)
	l.add("_INBOX.after", []byte("chat stored"), 1)
	l.lost()
	rs := l.takeResend(1)
	if len(rs) != 1 || rs[0].subject != "_INBOX.after" {
		t.Fatalf("sent again: %+v, want only the reply made after the park", rs)
	}
	if rs := l.takeResend(1); len(rs) != 0 {
		t.Fatalf("sent again twice: %+v", rs)
	}
}
