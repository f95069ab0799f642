package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/xhrsse/xhrsse/pkg/client"
	"github.com/xhrsse/xhrsse/pkg/protocol"
)

// startBulk is a Cmd that creates the file a transfer is saved to and asks
// the server for the transfer; the session's stream then fills the file.
func (m *model) startBulk(req protocol.BulkPost) tea.Cmd {
	if m.sess == nil {
		return m.bulk.Started(bulkStartedMsg{err: errors.New("not connected")}, time.Now())
	}
	sess, ctx, dir := m.sess, m.ctx, m.cfg.dir
	return func() tea.Msg {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return bulkStartedMsg{err: fmt.Errorf("create download directory: %w", err)}
		}
		f, err := os.CreateTemp(dir, saveName(req))
		if err != nil {
			return bulkStartedMsg{err: fmt.Errorf("create download file: %w", err)}
		}
		pctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		t, err := sess.Bulk(pctx, req, f)
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			return bulkStartedMsg{err: err}
		}
		return bulkStartedMsg{t: t, f: f, path: f.Name()}
	}
}

// saveName is the os.CreateTemp pattern of a download: the file's own base
// name (never a path) or the size asked for, made unique by CreateTemp.
func saveName(req protocol.BulkPost) string {
	if req.File != "" {
		base := filepath.Base(strings.ReplaceAll(req.File, "\\", "/"))
		base = strings.Map(func(r rune) rune {
			if safeRune(r) != r || r == '/' || r == '*' {
				return '_'
			}
			return r
		}, base)
		if base == "." || base == ".." || base == "" || base == "/" {
			base = "file"
		}
		return "*-" + base
	}
	n := int64(0)
	if req.Bytes != nil {
		n = *req.Bytes
	}
	return "bulk-" + strconv.FormatInt(n, 10) + "-*.bin"
}

// saveBulk is a Cmd run once a transfer has ended: it closes the file and
// hashes what is on disk, so "verified" speaks of the saved bytes and not
// only of what went through memory.
func saveBulk(t *client.Transfer, f *os.File, path string) tea.Cmd {
	return func() tea.Msg {
		if f == nil {
			return bulkSavedMsg{t: t, path: path, err: fmt.Errorf("no file")}
		}
		if err := f.Close(); err != nil {
			return bulkSavedMsg{t: t, path: path, err: fmt.Errorf("close %s: %w", path, err)}
		}
		sum, err := fileSHA256(path)
		return bulkSavedMsg{t: t, path: path, sha256: sum, err: err}
	}
}

// fileSHA256 returns the hex sha256 of the file at path.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// abortBulk is a Cmd that closes the file of a transfer that cannot finish
// and reports why; the partial data stays on disk.
func abortBulk(t *client.Transfer, f *os.File, path string, why error) tea.Cmd {
	return func() tea.Msg {
		if f != nil {
			f.Close()
		}
		return bulkSavedMsg{t: t, path: path, err: why}
	}
}
