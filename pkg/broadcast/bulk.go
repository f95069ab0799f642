package broadcast

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// A transfer is one bulk delivery. Its bytes are never held whole: generated
// data is a pure function of (seed, chunk), a file is read at the chunk's
// offset, so any chunk can be made again for a replay.
type transfer struct {
	id     string
	size   int64
	chunks int
	sum    string // hex sha256 of all the bytes

	seed [32]byte // generated data
	root *os.Root // file data: root and name
	name string

	// next is the next chunk to publish; the session's mutex guards it.
	next int
}

func (t *transfer) accepted() protocol.BulkAccepted {
	return protocol.BulkAccepted{Transfer: t.id, Bytes: t.size, Chunks: t.chunks, SHA256: t.sum}
}

// chunk appends chunk seq's raw bytes to dst.
func (t *transfer) chunk(dst []byte, seq int) ([]byte, error) {
	off := int64(seq) * protocol.BulkChunkSize
	n := int(min(protocol.BulkChunkSize, t.size-off))
	dst = growLen(dst, n)
	p := dst[len(dst)-n:]
	if t.root == nil {
		seed := t.seed
		binary.LittleEndian.PutUint64(seed[:8], binary.LittleEndian.Uint64(seed[:8])^uint64(seq))
		_, _ = mrand.NewChaCha8(seed).Read(p) // never fails
		return dst, nil
	}
	f, err := t.root.Open(t.name)
	if err != nil {
		return dst[:len(dst)-n], fmt.Errorf("bulk %s: %w", t.id, err)
	}
	defer f.Close()
	if _, err := f.ReadAt(p, off); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
		return dst[:len(dst)-n], fmt.Errorf("bulk %s chunk %d: %w", t.id, seq, err)
	}
	return dst, nil
}

// appendChunkEvent appends the body of the bulk event for chunk seq, using
// scratch for the raw bytes; it returns both buffers for reuse.
func (t *transfer) appendChunkEvent(dst, scratch []byte, seq int) ([]byte, []byte, error) {
	scratch, err := t.chunk(scratch[:0], seq)
	if err != nil {
		return dst, scratch, err
	}
	// The JSON is written by hand (it is the hot path of a transfer); the
	// protocol tests check it against encoding/json.
	dst = append(dst, "event: "+protocol.EventBulk+"\ndata: {\"transfer\":\""...)
	dst = append(dst, t.id...)
	dst = append(dst, "\",\"seq\":"...)
	dst = strconv.AppendInt(dst, int64(seq), 10)
	dst = append(dst, ",\"chunks\":"...)
	dst = strconv.AppendInt(dst, int64(t.chunks), 10)
	dst = append(dst, ",\"data\":\""...)
	dst = protocol.AppendBase64(dst, scratch) // base64.StdEncoding, faster
	dst = append(dst, "\"}\n\n"...)
	return dst, scratch, nil
}

func growLen(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// hash reads every chunk once to announce the sha256 up front.
func (t *transfer) hash() error {
	h := sha256.New()
	buf := make([]byte, 0, protocol.BulkChunkSize)
	for seq := range t.chunks {
		var err error
		if buf, err = t.chunk(buf[:0], seq); err != nil {
			return err
		}
		h.Write(buf)
	}
	t.sum = hex.EncodeToString(h.Sum(nil))
	return nil
}

func newTransferID() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// listFiles lists the regular files directly in dir.
func listFiles(dir string) ([]protocol.File, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("broadcast: list files: %w", err)
	}
	out := []protocol.File{}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, protocol.File{Name: e.Name(), Bytes: fi.Size()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// validFileName accepts only a plain name in the directory: no separators,
// no dot names. os.Root is the real guard; this turns the common cases into
// a clear 404 before touching the disk.
func validFileName(name string) bool {
	return name != "" && name != "." && name != ".." && fs.ValidPath(name) && !strings.ContainsAny(name, `/\`)
}

// sumCache remembers the sha256 of generated transfers by size. It is small
// and forgets at random when full: sizes people ask for repeat.
type sumCache struct {
	mu sync.Mutex
	m  map[int64]string // guarded by mu
}

const sumCacheSize = 64

func (c *sumCache) get(n int64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[n]
}

func (c *sumCache) put(n int64, sum string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[int64]string)
	}
	if len(c.m) >= sumCacheSize {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[n] = sum
}
