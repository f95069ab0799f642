package loadgen

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// Ways to fetch bulk data.
const (
	// BulkSSE asks the server for bulk transfers over the session's SSE
	// stream (POST /sessions/ID/bulk), as PROTOCOL.md describes.
	BulkSSE = "sse"
	// BulkGet fetches the same number of bytes with a plain HTTP GET of
	// /debug/blob?bytes=N, which only the raw baseline serves: the yardstick
	// for what SSE and base64 cost.
	BulkGet = "get"
)

// BulkReport says how fast bulk data arrived. A transfer is timed from just
// before its request to the receipt of its last byte (bulk-end for SSE), and
// every transfer's bytes are hashed on receipt, whichever way they came.
type BulkReport struct {
	Via       string  `json:"via"`
	Size      int64   `json:"transfer_bytes"`
	Transfers int     `json:"transfers"`
	Bytes     int64   `json:"bytes"`
	Seconds   float64 `json:"seconds"`
	MBPerSec  float64 `json:"mb_per_s"`
	Errors    int     `json:"errors"`
	Corrupt   int     `json:"corrupt"` // sha256, size or chunk order wrong
	LastError string  `json:"last_error,omitempty"`
}

// bulkDone is one transfer as the bulk stream received it.
type bulkDone struct {
	transfer string
	bytes    int64
	sum      string
	ok       bool // chunks in order, size and sha256 as bulk-end says
	at       time.Duration
}

// bulkReceiver reassembles transfers on the bulk stream. It is owned by the
// stream's reader, which hands each finished transfer to the runner.
type bulkReceiver struct {
	open map[string]*bulkRx
	done chan bulkDone
	buf  []byte // decoded chunk, reused
}

// parseChunk reads a bulk event's data. The common shape, the one
// PROTOCOL.md shows and xhrsse writes ({"transfer":…,"seq":…,"chunks":…,
// "data":"…"}), is read by hand and its base64 decoded straight from the
// decoder's buffer into a reused one: encoding/json (and even a copy of the
// 66 KiB line) costs the load generator more than the server spends writing
// the chunk, and would make the measuring side the bottleneck. Anything else
// goes through encoding/json. transfer and raw are valid until the next call.
func (b *bulkReceiver) parseChunk(data []byte) (transfer []byte, seq int, raw []byte, ok bool) {
	var (
		pTransfer = []byte(`{"transfer":"`)
		pSeq      = []byte(`","seq":`)
		pData     = []byte(`,"data":"`)
	)
	if rest, found := bytes.CutPrefix(data, pTransfer); found {
		tr, after, found := bytes.Cut(rest, pSeq)
		if found && bytes.IndexAny(tr, `"\`) < 0 {
			digits, tail, _ := bytes.Cut(after, []byte(","))
			n, err := atoi(digits)
			i := bytes.Index(tail, pData)
			if err == nil && i >= 0 && bytes.HasSuffix(tail, []byte(`"}`)) {
				enc := tail[i+len(pData) : len(tail)-2]
				if b.buf, err = protocol.AppendBase64Decode(b.buf[:0], enc); err == nil {
					return tr, n, b.buf, true
				}
			}
		}
	}
	var c protocol.BulkChunk
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, 0, nil, false
	}
	return []byte(c.Transfer), c.Seq, c.Data, true
}

// errNotDigits: a JSON number the fast path does not read (sign, fraction,
// exponent); encoding/json has the last word on it.
var errNotDigits = errors.New("not a plain number")

// atoi reads a plain run of decimal digits, as encoding/json writes an int,
// without making a string of it.
func atoi(b []byte) (int, error) {
	if len(b) == 0 || len(b) > 18 || (b[0] == '0' && len(b) > 1) {
		return 0, errNotDigits
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errNotDigits
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}

type bulkRx struct {
	h     hash.Hash
	bytes int64
	next  int
	bad   bool
}

func newBulkReceiver() *bulkReceiver {
	return &bulkReceiver{open: map[string]*bulkRx{}, done: make(chan bulkDone, 16)}
}

// handle accounts one bulk or bulk-end event; its data is only read during
// the call.
func (b *bulkReceiver) handle(ev *event, now time.Duration) {
	switch string(ev.name) {
	case protocol.EventBulk:
		transfer, seq, data, ok := b.parseChunk(ev.data)
		if !ok {
			return
		}
		rx := b.rx(transfer)
		if seq != rx.next {
			rx.bad = true
		}
		rx.next = seq + 1
		rx.h.Write(data)
		rx.bytes += int64(len(data))
	case protocol.EventBulkEnd:
		var e protocol.BulkEnd
		if err := json.Unmarshal(ev.data, &e); err != nil {
			return
		}
		rx := b.rx([]byte(e.Transfer))
		delete(b.open, e.Transfer)
		sum := hex.EncodeToString(rx.h.Sum(nil))
		d := bulkDone{transfer: e.Transfer, bytes: rx.bytes, sum: sum, at: now,
			ok: !rx.bad && rx.bytes == e.Bytes && sum == e.SHA256}
		select {
		case b.done <- d:
		default: // nobody is waiting any more
		}
	}
}

func (b *bulkReceiver) rx(transfer []byte) *bulkRx {
	rx := b.open[string(transfer)] // no allocation for the lookup
	if rx == nil {
		rx = &bulkRx{h: sha256.New()}
		b.open[string(transfer)] = rx
	}
	return rx
}

// runBulkSSE requests transfers of size bytes on the bulk stream one after
// another until ctx ends; a transfer the end cuts short is not counted.
func runBulkSSE(ctx context.Context, hc *http.Client, base string, st *stream, size int64, clock time.Time) BulkReport {
	rep := BulkReport{Via: BulkSSE, Size: size}
	var total time.Duration
	for ctx.Err() == nil {
		t0 := time.Since(clock)
		acc, err := postBulk(ctx, hc, base, st.session, size)
		if err != nil {
			if rep.failed(ctx, err) {
				break
			}
			continue
		}
		d, ok := waitBulk(ctx, st.bulk.done, acc.Transfer)
		if !ok {
			break // the window closed mid-transfer: not counted
		}
		if !d.ok || d.sum != acc.SHA256 || d.bytes != size {
			rep.Corrupt++
		}
		rep.Transfers++
		rep.Bytes += d.bytes
		total += d.at - t0
	}
	rep.finish(total)
	return rep
}

func waitBulk(ctx context.Context, done <-chan bulkDone, transfer string) (bulkDone, bool) {
	for {
		select {
		case <-ctx.Done():
			return bulkDone{}, false
		case d := <-done:
			if d.transfer == transfer {
				return d, true
			}
		}
	}
}

// errNoBulk means the server has no bulk endpoint: stop asking.
var errNoBulk = errors.New("server has no bulk endpoint")

func postBulk(ctx context.Context, hc *http.Client, base, session string, size int64) (protocol.BulkAccepted, error) {
	body, _ := json.Marshal(protocol.BulkPost{Bytes: &size})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/sessions/"+session+"/bulk", bytes.NewReader(body))
	if err != nil {
		return protocol.BulkAccepted{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return protocol.BulkAccepted{}, fmt.Errorf("bulk: %w", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch resp.StatusCode {
	case http.StatusAccepted:
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return protocol.BulkAccepted{}, fmt.Errorf("bulk: %s: %w", resp.Status, errNoBulk)
	default:
		return protocol.BulkAccepted{}, fmt.Errorf("bulk: %s: %s", resp.Status, bytes.TrimSpace(answer))
	}
	var acc protocol.BulkAccepted
	if err := json.Unmarshal(answer, &acc); err != nil {
		return acc, fmt.Errorf("bulk: bad answer %q", answer)
	}
	return acc, nil
}

// runBulkGet fetches /debug/blob?bytes=size one after another until ctx
// ends, hashing what arrives as the SSE path does.
func runBulkGet(ctx context.Context, hc *http.Client, base string, size int64) BulkReport {
	rep := BulkReport{Via: BulkGet, Size: size}
	var total time.Duration
	for ctx.Err() == nil {
		t0 := time.Now()
		n, err := getBlob(ctx, hc, base, size)
		if err != nil {
			if rep.failed(ctx, err) {
				break
			}
			continue
		}
		if n != size {
			rep.Corrupt++
		}
		rep.Transfers++
		rep.Bytes += n
		total += time.Since(t0)
	}
	rep.finish(total)
	return rep
}

func getBlob(ctx context.Context, hc *http.Client, base string, size int64) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/debug/blob?bytes="+strconv.FormatInt(size, 10), nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("blob: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return 0, fmt.Errorf("blob: %s: %w", resp.Status, errNoBulk)
	default:
		return 0, fmt.Errorf("blob: %s", resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return n, fmt.Errorf("blob: %w", err)
	}
	_ = h.Sum(nil) // the same work as the SSE path; there is no sum to compare
	return n, nil
}

func (r *BulkReport) finish(total time.Duration) {
	r.Seconds = total.Seconds()
	if total > 0 {
		r.MBPerSec = float64(r.Bytes) / 1e6 / total.Seconds()
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// failed counts a transfer that could not start and reports whether to stop
// trying: ctx ended, or the server has no bulk. Otherwise it pauses a little
// before the next try.
func (rep *BulkReport) failed(ctx context.Context, err error) (stop bool) {
	if ctx.Err() != nil {
		return true
	}
	rep.Errors++
	rep.LastError = err.Error()
	if errors.Is(err, errNoBulk) {
		return true
	}
	sleep(ctx, 100*time.Millisecond)
	return false
}
