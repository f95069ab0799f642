package server_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// TestBulkSizes: generated transfers around the chunk size arrive in seq
// order, as many chunks as announced, and hash to the announced sha256.
func TestBulkSizes(t *testing.T) {
	h := start(t)
	const k = protocol.BulkChunkSize
	for _, n := range []int64{0, 1, k - 1, k, k + 1, 5 << 20} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			sid := h.newSession(t)
			s := h.events(t, sid)
			s.Expect(t, protocol.EventSession)
			acc := h.bulk(t, sid, fmt.Sprintf(`{"bytes":%d}`, n))
			if acc.Bytes != n {
				t.Fatalf("202 says %d bytes, asked %d", acc.Bytes, n)
			}
			if n == 0 && acc.SHA256 != hex.EncodeToString(sha256.New().Sum(nil)) {
				t.Fatalf("sha256 of nothing: %s", acc.SHA256)
			}
			b := newBulkCheck(acc, false)
			var all []protocol.Message
			for !b.done {
				m := s.Next(t)
				all = append(all, m)
				if !b.feed(t, m) {
					t.Fatalf("unexpected %s event in a quiet session's transfer", m.Name)
				}
			}
			if len(all) != acc.Chunks+1 {
				t.Fatalf("%d events, want %d chunks and bulk-end", len(all), acc.Chunks)
			}
			ssetest.Consecutive(t, 1, all)
		})
	}
}

// TestBulkFile: GET /files lists the files dir, and a file sent by name
// arrives byte for byte.
func TestBulkFile(t *testing.T) {
	dir := t.TempDir()
	content := make([]byte, 3*protocol.BulkChunkSize+5)
	rand.Read(content)
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("data.bin", content)
	write("empty.txt", nil)
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := start(t, broadcast.WithFilesDir(dir))

	r := h.get(t, "/files")
	if r.Status != http.StatusOK {
		t.Fatalf("GET /files: %d %s", r.Status, r.Body)
	}
	want := []protocol.File{{Name: "data.bin", Bytes: int64(len(content))}, {Name: "empty.txt", Bytes: 0}}
	if got := ssetest.DecodeReply[[]protocol.File](t, "GET /files", r); !slices.Equal(got, want) {
		t.Fatalf("GET /files: %+v, want %+v", got, want)
	}

	sid := h.newSession(t)
	s := h.events(t, sid)
	s.Expect(t, protocol.EventSession)
	sum := sha256.Sum256(content)
	acc := h.bulk(t, sid, `{"file":"data.bin"}`)
	if acc.Bytes != int64(len(content)) || acc.Chunks != 4 || acc.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("202 %+v, want %d bytes in 4 chunks, sha256 %x", acc, len(content), sum)
	}
	b := newBulkCheck(acc, true)
	if others := b.readFrom(t, s); len(others) > 0 {
		t.Fatalf("unexpected %s event", others[0].Name)
	}
	if !bytes.Equal(b.data, content) {
		t.Fatal("the file arrived altered")
	}

	empty := newBulkCheck(h.bulk(t, sid, `{"file":"empty.txt"}`), false)
	if others := empty.readFrom(t, s); len(others) > 0 || empty.acc.Chunks != 0 {
		t.Fatalf("empty file: %d chunks, %d other events", empty.acc.Chunks, len(others))
	}
}

// TestBulkLarge: one 50 MiB transfer, counted and hashed as it arrives,
// never stored.
func TestBulkLarge(t *testing.T) {
	h := start(t)
	sid := h.newSession(t)
	s := h.events(t, sid)
	s.Expect(t, protocol.EventSession)
	const n = 50 << 20
	b := newBulkCheck(h.bulk(t, sid, fmt.Sprintf(`{"bytes":%d}`, n)), false)
	if others := b.readFrom(t, s); len(others) > 0 {
		t.Fatalf("unexpected %s event", others[0].Name)
	}
	if b.n != n {
		t.Fatalf("received %d bytes, want %d", b.n, n)
	}
}

// TestBulkInterleaves: a large transfer does not hold back channel ticks or
// chat: they arrive between its chunks.
func TestBulkInterleaves(t *testing.T) {
	h := start(t, broadcast.WithChannels(fastChannels(200)...))
	sid := h.newSession(t, "one")
	s := h.events(t, sid)
	s.Expect(t, protocol.EventSession)
	b := newBulkCheck(h.bulk(t, sid, fmt.Sprintf(`{"bytes":%d}`, 20<<20)), false)

	var (
		chatID     int64
		sawChat    bool
		nonBulk    int // events of other kinds between the first and last chunk
		pending    int // of those, seen since the last chunk
		chatBefore bool
	)
	for !b.done {
		m := s.Next(t)
		if b.feed(t, m) {
			if m.Name == protocol.EventBulk {
				nonBulk += pending
				pending = 0
				if b.next == 1 {
					// The transfer is under way: chat now.
					chatID = h.chat(t, sid, "ann", "between chunks")
				}
				if b.next == b.acc.Chunks {
					chatBefore = sawChat
				}
			}
			continue
		}
		switch m.Name {
		case "one":
		case protocol.EventChat:
			if c := ssetest.Decode[protocol.Chat](t, m); c.ID == chatID && chatID != 0 {
				sawChat = true
			}
		default:
			t.Fatalf("unexpected %s event", m.Name)
		}
		if b.next > 0 {
			pending++
		}
	}
	if nonBulk == 0 {
		t.Fatalf("no tick or chat between the first and the last of %d chunks", b.acc.Chunks)
	}
	if !chatBefore {
		t.Fatalf("the chat posted after the first chunk came after the last of %d chunks", b.acc.Chunks)
	}
	t.Logf("%d ticks and chats arrived between the %d chunks", nonBulk, b.acc.Chunks)
}

// TestBulkConcurrent: two transfers under way on one session take turns, and
// each arrives whole, in seq order.
func TestBulkConcurrent(t *testing.T) {
	h := start(t)
	sid := h.newSession(t)
	// Both transfers are asked for before the stream opens, so both are
	// waiting when its first chunk is made: how fast the first POST is
	// answered cannot let one transfer finish before the other starts.
	checks := map[string]*bulkCheck{}
	for _, n := range []int{1 << 20, 1<<20 + 7} {
		acc := h.bulk(t, sid, fmt.Sprintf(`{"bytes":%d}`, n))
		checks[acc.Transfer] = newBulkCheck(acc, false)
	}
	s := h.events(t, sid)
	s.Expect(t, protocol.EventSession)
	var order []string // transfer of each chunk, in arrival order
	for done := 0; done < len(checks); {
		m := s.Next(t)
		ours := false
		for tr, b := range checks {
			if b.feed(t, m) {
				ours = true
				if m.Name == protocol.EventBulk {
					order = append(order, tr)
				}
				if b.done {
					done++
				}
				break
			}
		}
		if !ours {
			t.Fatalf("unexpected %s event", m.Name)
		}
	}
	// Taking turns: the second transfer's chunks do not all wait for the
	// first one's end.
	switches := 0
	for i := 1; i < len(order); i++ {
		if order[i] != order[i-1] {
			switches++
		}
	}
	if switches < 2 {
		t.Fatalf("two transfers of %d chunks each switched %d times: one waited for the other", len(order)/2, switches)
	}
}
