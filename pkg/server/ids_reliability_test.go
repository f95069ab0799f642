package server_test

import (
	"encoding/base64"
	"math"
	"testing"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// TestSessionIDs: session ids are URL-safe, carry 128 random bits and never
// repeat. 10,000 from the hub and 200 over HTTP are checked: each decodes
// (unpadded base64url) to 16 bytes or more, none repeats, and each of the
// 128 bit positions is set in about half of them (within 6 standard
// deviations), which a counter, a clock or a short random part would fail.
func TestSessionIDs(t *testing.T) {
	h := start(t)
	const n = 10_000
	ids := make([]string, 0, n+200)
	for range n {
		s, err := h.srv.Hub.NewSession(nil)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID())
		h.srv.Hub.Drop(s)
	}
	for range 200 {
		ids = append(ids, h.newSession(t))
	}
	seen := make(map[string]bool, len(ids))
	var ones [128]int
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("session id %s… twice in %d", id[:6], len(ids))
		}
		seen[id] = true
		raw, err := base64.RawURLEncoding.Strict().DecodeString(id)
		if err != nil || len(raw) < 16 {
			t.Fatalf("session id %q: not 128 bits or more of unpadded base64url (%v)", id, err)
		}
		for bit := range 128 {
			if raw[bit/8]&(1<<(bit%8)) != 0 {
				ones[bit]++
			}
		}
	}
	total := float64(len(ids))
	sd := math.Sqrt(total / 4)
	for bit, k := range ones {
		if math.Abs(float64(k)-total/2) > 6*sd {
			t.Errorf("bit %d is set in %d of %d ids: not random", bit, k, len(ids))
		}
	}
	// The shortened form the logs use gives away 36 bits at most.
	if s := protocol.ShortID(ids[0]); len(s) > len(ids[0][:6])+len("…") {
		t.Errorf("ShortID %q is longer than 6 characters", s)
	}
}
