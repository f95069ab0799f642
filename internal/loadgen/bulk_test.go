package loadgen

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

func TestParseChunk(t *testing.T) {
	payload := make([]byte, 1000)
	rand.NewChaCha8([32]byte{1}).Read(payload)
	canonical, _ := json.Marshal(protocol.BulkChunk{Transfer: "tX_9", Seq: 12, Chunks: 40, Data: payload})
	tests := []struct {
		name string
		data string
		ok   bool
	}{
		{"canonical (fast path)", string(canonical), true},
		{"other field order (encoding/json)", `{"seq":12,"transfer":"tX_9","chunks":40,"data":"` + b64(payload) + `"}`, true},
		{"spaces (encoding/json)", `{"transfer": "tX_9", "seq": 12, "chunks": 40, "data": "` + b64(payload) + `"}`, true},
		{"escaped slashes (encoding/json)", `{"transfer":"tX_9","seq":12,"chunks":40,"data":"` + strings.ReplaceAll(b64(payload), "/", `\/`) + `"}`, true},
		{"seq with a sign (encoding/json)", `{"transfer":"tX_9","seq":+12,"chunks":40,"data":"` + b64(payload) + `"}`, false},
		{"bad base64", `{"transfer":"tX_9","seq":12,"chunks":40,"data":"!!!"}`, false},
		{"cut short", string(canonical[:len(canonical)-5]), false},
		{"not JSON", `hello`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBulkReceiver()
			tr, seq, got, ok := b.parseChunk([]byte(tt.data))
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if ok && (string(tr) != "tX_9" || seq != 12 || string(got) != string(payload)) {
				t.Errorf("got transfer %q seq %d and %d bytes (equal: %v)", tr, seq, len(got), string(got) == string(payload))
			}
		})
	}
}

func b64(p []byte) string {
	s, _ := json.Marshal(p)
	return string(s[1 : len(s)-1])
}

// TestBulkReceiver feeds whole transfers: one intact, one with a chunk
// missing, one whose bytes do not match the announced sum.
func TestBulkReceiver(t *testing.T) {
	payload := make([]byte, 2*protocol.BulkChunkSize+100)
	rand.NewChaCha8([32]byte{2}).Read(payload)
	sum := sha256.Sum256(payload)
	chunks := protocol.Chunks(int64(len(payload)))
	feed := func(b *bulkReceiver, transfer string, skip int, sha string) bulkDone {
		for seq := range chunks {
			if seq == skip {
				continue
			}
			end := min((seq+1)*protocol.BulkChunkSize, len(payload))
			data, _ := json.Marshal(protocol.BulkChunk{Transfer: transfer, Seq: seq, Chunks: chunks, Data: payload[seq*protocol.BulkChunkSize : end]})
			b.handle(&event{name: []byte(protocol.EventBulk), id: uint64(seq + 1), hasID: true, data: data}, 0)
		}
		data, _ := json.Marshal(protocol.BulkEnd{Transfer: transfer, Bytes: int64(len(payload)), SHA256: sha})
		b.handle(&event{name: []byte(protocol.EventBulkEnd), data: data}, time.Second)
		select {
		case d := <-b.done:
			return d
		default:
			t.Fatal("no transfer finished")
			return bulkDone{}
		}
	}
	b := newBulkReceiver()
	if d := feed(b, "good", -1, hex.EncodeToString(sum[:])); !d.ok || d.bytes != int64(len(payload)) || d.at != time.Second {
		t.Errorf("intact transfer: %+v, want ok", d)
	}
	if d := feed(b, "holey", 1, hex.EncodeToString(sum[:])); d.ok {
		t.Errorf("transfer missing chunk 1: %+v, want not ok", d)
	}
	if d := feed(b, "wrongsum", -1, "00"); d.ok {
		t.Errorf("transfer with a wrong sum: %+v, want not ok", d)
	}
	if len(b.open) != 0 {
		t.Errorf("%d transfers left open", len(b.open))
	}
}
