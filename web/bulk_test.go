package web_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/xhrsse/xhrsse/internal/ssetest"
	"github.com/xhrsse/xhrsse/internal/testserver"
	"github.com/xhrsse/xhrsse/pkg/broadcast"
)

// waitBulkDone waits for the bulk panel to settle and fails unless it says
// the sha256 was verified.
func waitBulkDone(t *testing.T, p *browserPage) {
	t.Helper()
	p.waitFor("the bulk transfer to finish", `['verified', 'mismatch', 'failed'].includes(document.getElementById('bulk-status').dataset.state)`)
	if st := eval[string](p, `document.getElementById('bulk-status').dataset.state`); st != "verified" {
		t.Fatalf("bulk ended %s: %s\n%s", st, p.text("bulk-status"), p.state())
	}
	if got := p.text("bulk-status"); !strings.HasPrefix(got, "sha256 verified") {
		t.Errorf("bulk status %q, want it to say sha256 verified", got)
	}
}

// download clicks the page's download link, as a person would, and returns
// the file the browser saved in dir under the link's name.
func download(t *testing.T, p *browserPage, dir, name string) []byte {
	t.Helper()
	type link struct {
		Hidden bool   `json:"hidden"`
		Href   string `json:"href"`
		Name   string `json:"name"`
	}
	l := eval[link](p, `(() => {
		const a = document.getElementById('bulk-download');
		return { hidden: a.hidden, href: a.href, name: a.download };
	})()`)
	if l.Hidden || !strings.HasPrefix(l.Href, "blob:") || l.Name != name {
		t.Fatalf("download link hidden=%v href=%q name=%q, want a visible blob: link named %s", l.Hidden, l.Href, l.Name, name)
	}
	p.do(chromedp.Click(chromedp.ID("bulk-download")))
	path := filepath.Join(dir, name)
	var b []byte
	// The browser writes a temporary file and renames it when done.
	ssetest.Eventually(t, name+" downloaded into "+dir, func() error {
		var err error
		if b, err = os.ReadFile(path); err != nil {
			entries, _ := os.ReadDir(dir)
			return fmt.Errorf("%w (the directory has %v)", err, entries)
		}
		return nil
	})
	return b
}

// TestBulk fetches 5 MiB of generated data and a file the server offers,
// each reassembled and verified in the page; the file's hash is checked
// against the one Go computes, and the page's fallback SHA-256 (for pages
// served over plain http to another host, where crypto.subtle is absent)
// against Web Crypto.
func TestBulk(t *testing.T) {
	dir := t.TempDir()
	content := make([]byte, 300_001) // not a multiple of the 48 KiB chunk
	if _, err := rand.Read(content); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sample.bin"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, fastChannels(t), broadcast.WithFilesDir(dir))
	p := openPage(t, srv.URL+"/")
	downloads := t.TempDir()
	if _, err := chromedp.CallBrowser(p.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads,
	}); err != nil {
		t.Fatal(err)
	}
	p.waitFor("connected", connState("connected"))

	p.do(
		chromedp.SetValue(chromedp.ID("bulk-source"), "5242880"),
		chromedp.Click(chromedp.ID("bulk-start")),
	)
	waitBulkDone(t, p)
	if v := eval[float64](p, `document.getElementById('bulk-progress').value`); v != 1 {
		t.Errorf("progress %v at the end, want 1", v)
	}
	if r := p.text("bulk-rate"); !strings.HasSuffix(r, " MB/s") || strings.HasPrefix(r, "–") {
		t.Errorf("rate shown as %q, want a number of MB/s", r)
	}
	got := download(t, p, downloads, "xhrsse-5242880.bin")
	sum := sha256.Sum256(got)
	if len(got) != 5<<20 || hex.EncodeToString(sum[:]) != eval[string](p, `document.getElementById('bulk-status').dataset.sha256`) {
		t.Errorf("downloaded %d bytes with sha256 %x, want %d bytes with the hash the page verified", len(got), sum, 5<<20)
	}

	// A file from GET /files, listed in the same select.
	p.waitFor("the file in the list", `document.querySelector('#bulk-source option[value="file:sample.bin"]') !== null`)
	p.do(
		chromedp.SetValue(chromedp.ID("bulk-source"), "file:sample.bin"),
		chromedp.Click(chromedp.ID("bulk-start")),
	)
	p.waitFor("the second transfer to start", `document.getElementById('bulk-download').hidden`)
	waitBulkDone(t, p)
	sum = sha256.Sum256(content)
	if got := eval[string](p, `document.getElementById('bulk-status').dataset.sha256`); got != hex.EncodeToString(sum[:]) {
		t.Errorf("page hashed the file as %s, Go as %x", got, sum)
	}
	if got := download(t, p, downloads, "sample.bin"); !bytes.Equal(got, content) {
		t.Errorf("downloaded %d bytes that differ from the %d-byte file", len(got), len(content))
	}

	bad := eval[[]string](p, `(async () => {
		const { sha256HexJS, SHA256 } = await import('/sha256.js');
		const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, '0')).join('');
		const out = [];
		for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 1000, 49152, 1 << 20]) {
			const b = new Uint8Array(n);
			for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65536)));
			const want = hex(await crypto.subtle.digest('SHA-256', b));
			if (sha256HexJS(b) !== want) out.push('whole ' + n);
			const h = new SHA256();
			for (let i = 0; i < n; i += 37) h.update(b.subarray(i, Math.min(n, i + 37)));
			if (h.hex() !== want) out.push('pieces ' + n);
		}
		return out;
	})()`)
	for _, b := range bad {
		t.Errorf("fallback SHA-256 differs from Web Crypto: %s", b)
	}
	p.checkClean()
}
