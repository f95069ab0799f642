package client

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

func bulkFrame(id uint64, tr string, seq, chunks int, data []byte) string {
	b, _ := json.Marshal(protocol.BulkChunk{Transfer: tr, Seq: seq, Chunks: chunks, Data: data})
	return frame(id, protocol.EventBulk, string(b))
}

func endFrame(id uint64, tr string, n int64, sum string) string {
	b, _ := json.Marshal(protocol.BulkEnd{Transfer: tr, Bytes: n, SHA256: sum})
	return frame(id, protocol.EventBulkEnd, string(b))
}

func sum(b ...[]byte) string {
	h := sha256.New()
	for _, p := range b {
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestBulkVerification feeds hand-made transfers, good and broken, and
// checks each ends once, with the right verdict.
func TestBulkVerification(t *testing.T) {
	c0 := bytes.Repeat([]byte("a"), protocol.BulkChunkSize)
	c1 := []byte("tail!")
	bad1 := []byte("tall!")
	n := int64(len(c0) + len(c1))
	good := sum(c0, c1)
	acc := protocol.BulkAccepted{Transfer: "T1", Bytes: n, Chunks: 2, SHA256: good}
	is := func(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }
	cases := []struct {
		name   string
		acc    protocol.BulkAccepted
		stream string
		writer func(*bytes.Buffer) interface{ Write([]byte) (int, error) }
		want   func(error) bool
	}{
		{name: "verified", acc: acc,
			stream: bulkFrame(1, "T1", 0, 2, c0) + bulkFrame(2, "T1", 1, 2, c1) + endFrame(3, "T1", n, good),
			want:   func(err error) bool { return err == nil }},
		{name: "corrupted chunk", acc: acc,
			stream: bulkFrame(1, "T1", 0, 2, c0) + bulkFrame(2, "T1", 1, 2, bad1) + endFrame(3, "T1", n, good),
			want:   is(ErrChecksum)},
		{name: "bulk-end disagrees", acc: acc,
			stream: bulkFrame(1, "T1", 0, 2, c0) + bulkFrame(2, "T1", 1, 2, c1) + endFrame(3, "T1", n, sum(c0, bad1)),
			want:   is(ErrChecksum)},
		{name: "POST disagrees", acc: protocol.BulkAccepted{Transfer: "T1", Bytes: n, Chunks: 2, SHA256: sum(c0, bad1)},
			stream: bulkFrame(1, "T1", 0, 2, c0) + bulkFrame(2, "T1", 1, 2, c1) + endFrame(3, "T1", n, good),
			want:   is(ErrChecksum)},
		{name: "size disagrees", acc: acc,
			stream: bulkFrame(1, "T1", 0, 2, c0) + bulkFrame(2, "T1", 1, 2, c1) + endFrame(3, "T1", n+1, good),
			want:   is(ErrChecksum)},
		{name: "chunk skipped", acc: acc,
			stream: bulkFrame(1, "T1", 1, 2, c1) + endFrame(2, "T1", n, good),
			want:   is(ErrChunksLost)},
		{name: "ended early", acc: acc,
			stream: bulkFrame(1, "T1", 0, 2, c0) + endFrame(2, "T1", n, good),
			want:   is(ErrChunksLost)},
		{name: "gap", acc: acc,
			stream: bulkFrame(1, "T1", 0, 2, c0) + frame(5, protocol.EventGap, `{"missed":3}`) + bulkFrame(6, "T1", 1, 2, c1) + endFrame(7, "T1", n, good),
			want:   is(ErrChunksLost)},
		{name: "writer fails", acc: acc,
			stream: bulkFrame(1, "T1", 0, 2, c0) + bulkFrame(2, "T1", 1, 2, c1) + endFrame(3, "T1", n, good),
			writer: func(*bytes.Buffer) interface{ Write([]byte) (int, error) } { return failWriter{} },
			want:   func(err error) bool { return err != nil && strings.Contains(err.Error(), "disk full") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			posted := make(chan struct{})
			f := newFake(t)
			f.bulk = func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusAccepted, tc.acc) }
			f.stream = func(w http.ResponseWriter, r *http.Request, n int) {
				startSSE(w)
				raw(w, sessionFrame("S1", 0, false))
				select {
				case <-posted:
				case <-r.Context().Done():
					return
				}
				raw(w, tc.stream+frame(100, "one", "end"))
				hold(r)
			}
			_, s := f.session()
			h := startRun(t, s)
			h.waitState(Connected)
			var buf bytes.Buffer
			var w interface{ Write([]byte) (int, error) } = &buf
			if tc.writer != nil {
				w = tc.writer(&buf)
			}
			tr, err := s.Bulk(testCtx(t), protocol.BulkPost{Bytes: &tc.acc.Bytes}, w)
			if err != nil {
				t.Fatal(err)
			}
			close(posted)
			h.waitFor("sentinel", isTick("one"))
			done := 0
			for _, ev := range h.log {
				if ev.Kind == BulkDone && ev.Transfer == tr {
					done++
				}
			}
			if done != 1 {
				t.Errorf("%d BulkDone events", done)
			}
			select {
			case <-tr.Done():
			default:
				t.Fatal("transfer not done")
			}
			if !tc.want(tr.Err()) {
				t.Errorf("transfer error %v", tr.Err())
			}
			if tr.Err() == nil && (buf.Len() != int(n) || tr.SHA256() != good) {
				t.Errorf("verified transfer wrote %d bytes, sha %s", buf.Len(), tr.SHA256())
			}
			if s.LastEventID() != 100 {
				t.Errorf("LastEventID %d: absorbed events not taken", s.LastEventID())
			}
		})
	}
}

// TestBulkChunksBeforeAnswer: the server may send the first chunks before the
// POST's answer is read; they still belong to the Transfer that Bulk returns.
func TestBulkChunksBeforeAnswer(t *testing.T) {
	data := []byte("early bytes")
	acc := protocol.BulkAccepted{Transfer: "T1", Bytes: int64(len(data)), Chunks: 1, SHA256: sum(data)}
	sendNow, written := make(chan struct{}), make(chan struct{})
	f := newFake(t)
	f.bulk = func(w http.ResponseWriter, r *http.Request) {
		close(sendNow)
		<-written
		time.Sleep(100 * time.Millisecond) // let the client read the stream first
		writeJSON(w, http.StatusAccepted, acc)
	}
	f.stream = func(w http.ResponseWriter, r *http.Request, n int) {
		startSSE(w)
		raw(w, sessionFrame("S1", 0, false))
		select {
		case <-sendNow:
		case <-r.Context().Done():
			return
		}
		raw(w, bulkFrame(1, "T1", 0, 1, data)+endFrame(2, "T1", acc.Bytes, acc.SHA256))
		close(written)
		hold(r)
	}
	_, s := f.session()
	h := startRun(t, s)
	h.waitState(Connected)
	var buf bytes.Buffer
	tr, err := s.Bulk(testCtx(t), protocol.BulkPost{Bytes: &acc.Bytes}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	ev := h.waitFor("bulk done", func(ev Event) bool { return ev.Kind == BulkDone })
	if ev.Transfer != tr || tr.Err() != nil || buf.String() != string(data) {
		t.Errorf("done %p (want %p) err %v data %q", ev.Transfer, tr, tr.Err(), buf.String())
	}
}

// TestBulkAdopted: a transfer nobody here asked for (another holder of the
// session id did) is still reassembled and verified against bulk-end.
func TestBulkAdopted(t *testing.T) {
	data := []byte("someone else's")
	f := newFake(t)
	f.stream = func(w http.ResponseWriter, r *http.Request, n int) {
		startSSE(w)
		raw(w, sessionFrame("S1", 0, false)+bulkFrame(1, "T9", 0, 1, data)+endFrame(2, "T9", int64(len(data)), sum(data)))
		hold(r)
	}
	_, s := f.session()
	h := startRun(t, s)
	p := h.waitFor("progress", func(ev Event) bool { return ev.Kind == BulkProgress })
	d := h.waitFor("done", func(ev Event) bool { return ev.Kind == BulkDone })
	tr := d.Transfer
	if p.Transfer != tr || tr.ID() != "T9" || tr.Err() != nil || tr.Accepted().Bytes != -1 {
		t.Errorf("adopted transfer %s: err %v accepted %+v", tr.ID(), tr.Err(), tr.Accepted())
	}
	if got, total := tr.Progress(); got != int64(len(data)) || total != -1 {
		t.Errorf("progress %d/%d", got, total)
	}
}

// TestBulkAnsweredAfterAGapFails: a transfer whose POST was out when a gap
// came may have started before it, its chunks in the gap, and nothing more
// of it would come: it fails at once, as the transfers known at the gap do.
func TestBulkAnsweredAfterAGapFails(t *testing.T) {
	acc := protocol.BulkAccepted{Transfer: "T1", Bytes: 10, Chunks: 1, SHA256: sum([]byte("0123456789"))}
	posted, gapSent := make(chan struct{}), make(chan struct{})
	f := newFake(t)
	f.bulk = func(w http.ResponseWriter, r *http.Request) {
		close(posted)
		<-gapSent
		time.Sleep(100 * time.Millisecond) // let the client read the gap first
		writeJSON(w, http.StatusAccepted, acc)
	}
	f.stream = func(w http.ResponseWriter, r *http.Request, n int) {
		startSSE(w)
		raw(w, sessionFrame("S1", 0, false))
		select {
		case <-posted:
		case <-r.Context().Done():
			return
		}
		g, _ := json.Marshal(protocol.Gap{Missed: 5})
		raw(w, frame(6, protocol.EventGap, string(g)))
		close(gapSent)
		hold(r)
	}
	_, s := f.session()
	h := startRun(t, s)
	h.waitState(Connected)
	tr, err := s.Bulk(testCtx(t), protocol.BulkPost{Bytes: &acc.Bytes}, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-tr.Done():
	case <-time.After(eventually):
		t.Fatal("a transfer asked for across a gap is still waiting for chunks")
	}
	if !errors.Is(tr.Err(), ErrChunksLost) {
		t.Fatalf("transfer error %v, want ErrChunksLost", tr.Err())
	}
}
