package broadcast

import (
	"net/http"
	"sync/atomic"
	"testing"
)

// flusherOf finds the flush through wrappers, as ResponseController does.
func TestFlusherOf(t *testing.T) {
	fw := newFlushWriter()
	if f := flusherOf(wrapped{fw}); f == nil {
		t.Fatal("no flush through Unwrap")
	} else if err := f(); err != nil || len(fw.pieces) != 1 {
		t.Fatalf("flush through Unwrap: %v, %d pieces", err, len(fw.pieces))
	}
	if f := flusherOf(&discardWriter{}); f == nil {
		t.Fatal("no FlushError found")
	}
	if f := flusherOf(plainWriter{}); f != nil {
		t.Fatal("a flush for a writer that has none")
	}
}

type wrapped struct{ http.ResponseWriter }

func (w wrapped) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type plainWriter struct{}

func (plainWriter) Header() http.Header         { return http.Header{} }
func (plainWriter) WriteHeader(int)             {}
func (plainWriter) Write(p []byte) (int, error) { return len(p), nil }

// An idle stream gives its buffer back; a grown one is not pooled.
func TestStreamWriterIdleGivesBufferBack(t *testing.T) {
	h := quietHub(t)
	o := newStreamWriter(plainWriter{}, h, new(atomic.Int64))
	o.take()
	o.buf = append(o.buf, "x"...)
	if err := o.write(); err != nil {
		t.Fatal(err)
	}
	o.idle()
	if o.buf != nil || o.box != nil {
		t.Fatal("idle writer still holds its buffer")
	}
	o.take()
	o.buf = append(o.buf, make([]byte, 2*maxPooled)...)
	box := o.box
	o.idle()
	if cap(*box) > maxPooled {
		t.Fatalf("a %d-byte buffer went back to the pool", cap(*box))
	}
}
