package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xhrsse/xhrsse/pkg/client"
)

// startedBulk is a bulk line with a transfer under way into a new file.
func startedBulk(t *testing.T) (*bulk, *os.File) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "bulk.bin"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	b := newBulk(DefaultStyles(), defaultKeys())
	b.phase, b.what = bulkStarting, "1.0 KiB"
	// A transfer the stream has not fed: it has not ended.
	if cmd := b.Started(bulkStartedMsg{t: &client.Transfer{}, f: f, path: f.Name()}, time.Now()); cmd != nil {
		t.Fatal("a transfer that has not ended is being saved")
	}
	if b.phase != bulkRunning {
		t.Fatalf("phase %d after Started, want running", b.phase)
	}
	return &b, f
}

func closed(f *os.File) bool {
	_, err := f.Write([]byte("x"))
	return errors.Is(err, os.ErrClosed)
}

// TestBulkOwnsItsFile: the bulk line closes the file of a transfer still
// under way when the program ends, and once it has handed the file to the
// Cmd that closes it, it no longer touches it.
func TestBulkOwnsItsFile(t *testing.T) {
	t.Run("closed at the end", func(t *testing.T) {
		b, f := startedBulk(t)
		if closed(f) {
			t.Fatal("file closed while the transfer runs")
		}
		b.Close()
		if !closed(f) {
			t.Fatal("Close left the file open")
		}
	})
	t.Run("handed to the abort", func(t *testing.T) {
		b, f := startedBulk(t)
		cmd := b.Abort(errors.New("the stream ended: connection refused"))
		if cmd == nil {
			t.Fatal("no Cmd to close the file of an aborted transfer")
		}
		if closed(f) {
			t.Fatal("the file was closed outside a Cmd")
		}
		b.Close() // the file is the Cmd's now
		if closed(f) {
			t.Fatal("Close closed a file it had handed over")
		}
		msg, ok := cmd().(bulkSavedMsg)
		if !ok || !closed(f) {
			t.Fatalf("the abort Cmd answered %#v and left the file open: %v", msg, !closed(f))
		}
		b.Saved(msg, time.Now())
		if b.phase != bulkIdle || b.ok || !strings.Contains(b.result, "connection refused") || !strings.Contains(b.result, "partial data in") {
			t.Fatalf("after the abort: phase %d, ok %v, %q", b.phase, b.ok, b.result)
		}
		if b.Abort(errors.New("again")) != nil {
			t.Fatal("a second abort with no transfer under way")
		}
	})
}
